/**
 * The name this tab chats as. It is kept in sessionStorage, which survives a
 * reload of the tab but is not shared with other tabs, so a second tab can
 * chat under another name. Names used before in this browser are remembered
 * (localStorage) and offered on the name screen.
 */
import { isPeerId } from 'intersession'

const KEY = 'intersession-demo:name'
const RECENT_KEY = 'intersession-demo:recent-names'
const RECENT_LIMIT = 5
export const MAX_NAME_LENGTH = 32

/** Why `name` cannot be a chat name, or undefined when it can. */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'Type a name.'
  if (name.length > MAX_NAME_LENGTH) return `At most ${MAX_NAME_LENGTH} characters.`
  if (!isPeerId(name)) return 'No spaces or control characters.'
  return undefined
}

export function savedName(): string | undefined {
  const name = sessionStorage.getItem(KEY)
  return name !== null && nameProblem(name) === undefined ? name : undefined
}

export function saveName(name: string): void {
  sessionStorage.setItem(KEY, name)
  localStorage.setItem(RECENT_KEY, JSON.stringify([name, ...recentNames().filter((n) => n !== name)].slice(0, RECENT_LIMIT)))
}

export function forgetName(): void {
  sessionStorage.removeItem(KEY)
}

/** Names this browser chatted as, latest first. */
export function recentNames(): string[] {
  try {
    const names: unknown = JSON.parse(localStorage.getItem(RECENT_KEY) ?? '[]')
    return Array.isArray(names) ? names.filter((n): n is string => typeof n === 'string' && nameProblem(n) === undefined) : []
  } catch {
    return []
  }
}

/** The conversation last open for `name`, reopened after a reload. */
export function lastConversation(name: string): string | undefined {
  return localStorage.getItem(`${KEY}:${name}:open`) ?? undefined
}

export function rememberConversation(name: string, peer: string): void {
  localStorage.setItem(`${KEY}:${name}:open`, peer)
}
