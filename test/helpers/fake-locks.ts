/**
 * The Web Locks API (`navigator.locks`) for Node, as much as the worker's
 * Host and the page's Messenger use of it: exclusive locks granted in request
 * order, `ifAvailable`, `steal` (the holder's request rejects `AbortError`)
 * and `signal` (a queued request rejects `AbortError`). Node 20 has none.
 */

type Callback = (lock: { readonly name: string; readonly mode: 'exclusive' } | null) => unknown

interface Options {
  readonly ifAvailable?: boolean
  readonly steal?: boolean
  readonly signal?: AbortSignal
}

const aborted = (what: string): DOMException => new DOMException(what, 'AbortError')

class FakeLocks {
  readonly #holders = new Map<string, { readonly steal: () => void }>()
  readonly #queues = new Map<string, (() => void)[]>()

  request(name: string, optionsOrCallback: Options | Callback, maybeCallback?: Callback): Promise<unknown> {
    const options = typeof optionsOrCallback === 'function' ? {} : optionsOrCallback
    const callback = typeof optionsOrCallback === 'function' ? optionsOrCallback : maybeCallback!
    return new Promise((resolve, reject) => {
      const grant = (): void => {
        const holder = {
          steal: (): void => reject(aborted('the lock was stolen')),
        }
        this.#holders.set(name, holder)
        const release = (): void => {
          if (this.#holders.get(name) !== holder) return
          this.#holders.delete(name)
          this.#queues.get(name)?.shift()?.()
        }
        Promise.resolve()
          .then(() => callback({ name, mode: 'exclusive' }))
          .then(
            (value) => {
              release()
              resolve(value)
            },
            (error: unknown) => {
              release()
              reject(error instanceof Error ? error : new Error(String(error)))
            },
          )
      }
      if (options.steal === true) {
        this.#holders.get(name)?.steal()
        grant()
        return
      }
      if (!this.#holders.has(name)) {
        grant()
        return
      }
      if (options.ifAvailable === true) {
        Promise.resolve()
          .then(() => callback(null))
          .then(resolve, reject)
        return
      }
      if (options.signal?.aborted === true) {
        reject(aborted('aborted before it was queued'))
        return
      }
      const queue = this.#queues.get(name) ?? []
      this.#queues.set(name, queue)
      const waiter = (): void => {
        options.signal?.removeEventListener('abort', abort)
        grant()
      }
      const abort = (): void => {
        queue.splice(queue.indexOf(waiter), 1)
        reject(aborted('aborted while queued'))
      }
      options.signal?.addEventListener('abort', abort, { once: true })
      queue.push(waiter)
    })
  }
}

/** Installs a fresh `navigator.locks` (no lock held); returns the function that removes it. */
export function installFakeLocks(): () => void {
  const global = globalThis as { navigator?: unknown }
  const before = Object.getOwnPropertyDescriptor(globalThis, 'navigator')
  Object.defineProperty(globalThis, 'navigator', { value: { ...(global.navigator as object | undefined), locks: new FakeLocks() }, configurable: true })
  return () => {
    if (before === undefined) delete global.navigator
    else Object.defineProperty(globalThis, 'navigator', before)
  }
}
