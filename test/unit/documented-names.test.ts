/**
 * The docs list exactly the error codes, statuses and relay close codes that
 * exist (issue 20: docs named `EPOCH_STALE`, which never existed, and left out
 * `stored`, `failed`, `MESSAGE_FAILED`, `DUPLICATE_ID`). The names are read
 * from the source with the TypeScript compiler and from the marked tables of
 * the docs.
 */
import { readFileSync } from 'node:fs'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'
import { CLOSE_CODES } from '../../src/protocol/relay.js'

const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8')

/** The string literal members of the exported union type `name` in the TypeScript file at `path`. */
function unionMembers(path: string, name: string): string[] {
  const source = ts.createSourceFile(path, read(path), ts.ScriptTarget.ES2022, true)
  const alias = source.statements.find((s): s is ts.TypeAliasDeclaration => ts.isTypeAliasDeclaration(s) && s.name.text === name)
  if (alias === undefined || !ts.isUnionTypeNode(alias.type)) throw new Error(`${path} has no union type ${name}`)
  return alias.type.types.map((t) => {
    if (!ts.isLiteralTypeNode(t) || !ts.isStringLiteral(t.literal)) throw new Error(`${name} has a member that is not a string literal`)
    return t.literal.text
  })
}

/** The first column (backquotes stripped) of the table between `<!-- tag:start ... -->` and `<!-- tag:end -->` in `path`. */
function documented(path: string, tag: string): string[] {
  const text = read(path)
  const start = text.indexOf(`<!-- ${tag}:start`)
  const end = text.indexOf(`<!-- ${tag}:end -->`)
  if (start < 0 || end < start) throw new Error(`${path} has no ${tag} table`)
  return text
    .slice(start, end)
    .split('\n')
    .filter((line) => line.startsWith('| ') && !line.startsWith('| ---'))
    .slice(1)
    .map((line) => line.split('|')[1]!.trim().replace(/`/g, ''))
}

const sorted = (names: readonly string[]): string[] => [...names].sort()

describe('the docs name exactly what exists', () => {
  it('every IlmError code, and no other, in docs/PROTOCOL.md', () => {
    expect(sorted(documented('docs/PROTOCOL.md', 'codes'))).toEqual(sorted(unionMembers('src/core/errors.ts', 'IlmErrorCode')))
  })

  it('every message status, and no other, in docs/PROTOCOL.md', () => {
    expect(sorted(documented('docs/PROTOCOL.md', 'statuses'))).toEqual(sorted(unionMembers('src/core/api.ts', 'MessageStatus')))
  })

  it('every relay close code, with its number, in docs/RELAY.md', () => {
    const text = read('docs/RELAY.md')
    const rows = documented('docs/RELAY.md', 'close-codes')
    expect(sorted(rows)).toEqual(sorted(Object.values(CLOSE_CODES).map(String)))
    for (const [name, code] of Object.entries(CLOSE_CODES)) expect(text).toContain(`| ${code} | ${name} |`)
  })

  it('no doc names a code, refusal or close code that does not exist', () => {
    // Every backquoted ALL_CAPS word in the docs is a known name: an error code, a refusal reason the
    // engine counts (`refused()`), a close code, an environment variable, or a Redis command.
    const known = new Set([
      ...unionMembers('src/core/errors.ts', 'IlmErrorCode'),
      ...unionMembers('src/core/codec.ts', 'DecodeFailure'),
      ...unionMembers('src/core/e2e.ts', 'OpenFailure'),
      ...[...read('src/core/engine.ts').matchAll(/#refuse\('([A-Z_]+)'\)/g)].map((m) => m[1]!),
      ...Object.keys(CLOSE_CODES),
      ...['XADD', 'XRANGE', 'XDEL', 'WAIT', 'SPUBLISH', 'SSUBSCRIBE', 'MIGRATE', 'EVALSHA', 'SADD', 'SREM', 'SCAN', 'XLEN'],
    ])
    const environment = /^(INTERSESSION_[A-Z_]+|CHROMIUM_PATH|FIREFOX_PATH|MOZ_[A-Z_]+|REDIS_SERVER|REDIS_CLI|FUZZ_SEED|FUZZ_RUNS|RECEIPT_RUNS|CI)$/
    for (const file of [
      'README.md',
      'relay/README.md',
      'docs/PROTOCOL.md',
      'docs/GUARANTEES.md',
      'docs/RELAY.md',
      'docs/ARCHITECTURE.md',
      'docs/SCALING.md',
      'docs/BROWSERS.md',
    ]) {
      const named = [...read(file).matchAll(/`([A-Z][A-Z_]{3,})`/g)].map((m) => m[1]!)
      expect(
        named.filter((name) => !known.has(name) && !environment.test(name)),
        file,
      ).toEqual([])
    }
  })
})
