// @ts-check
import js from '@eslint/js'
import prettier from 'eslint-config-prettier'
import tseslint from 'typescript-eslint'

/** ESLint: typescript-eslint's strict type-checked preset; Prettier owns layout, so its conflicting rules are off. */
export default tseslint.config(
  { ignores: ['dist/', '**/.dist/', '**/dist/', 'test/bench/results/', 'soak/', 'bench/'] },
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'scripts/**/*.mjs', 'scripts/**/*.cjs', 'demo/**/*.ts', 'vite.config.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.strictTypeChecked, prettier],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Numbers and booleans print exactly; objects, undefined and unknowns stay forbidden in templates.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // The house style `(x) => this.#f(x)` returns void either way; braces would only add noise.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // A leading underscore names a value dropped on purpose (a field destructured away, a parameter a signature requires).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
      // A destructuring whose other names are reassigned stays `let` as a whole.
      'prefer-const': ['error', { destructuring: 'all' }],
      // An async method without await is how a contract method (Store, Transport) rejects instead of throwing.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // Not yet clean (issue 20): these rules still flag the count of sites noted on each line when the preset
    // went in. They warn, and `npm run lint` runs with --max-warnings at the total, so the count can only fall.
    // Lower the cap (package.json) as sites are fixed; turn a rule back to its preset setting when it reaches 0.
    // Some sites are defensive on purpose and need a reviewed disable, not a rewrite: e.g. `String(event)` in a misuse
    // TypeError (a JS caller may pass a symbol), or checks on values the types promise but network input does not.
    files: ['src/**/*.ts', 'test/**/*.ts', 'scripts/**/*.mjs', 'scripts/**/*.cjs', 'demo/**/*.ts', 'vite.config.ts'],
    rules: {
      '@typescript-eslint/no-unnecessary-condition': 'warn', // 78
      '@typescript-eslint/no-non-null-assertion': 'warn', // 52
      '@typescript-eslint/unbound-method': 'warn', // 27
      '@typescript-eslint/no-unsafe-assignment': 'warn', // 20
      '@typescript-eslint/no-meaningless-void-operator': 'warn', // 19
      '@typescript-eslint/no-confusing-void-expression': 'warn', // 12
      '@typescript-eslint/prefer-promise-reject-errors': 'warn', // 10
      '@typescript-eslint/no-unnecessary-type-conversion': 'warn', // 7
      '@typescript-eslint/no-base-to-string': 'warn', // 7
      '@typescript-eslint/use-unknown-in-catch-callback-variable': 'warn', // 3
      'prefer-const': 'warn', // 1
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'warn', // 2
      '@typescript-eslint/no-unsafe-call': 'warn', // 2
      '@typescript-eslint/no-misused-spread': 'warn', // 2
      '@typescript-eslint/await-thenable': 'warn', // 3
      '@typescript-eslint/no-redundant-type-constituents': 'warn', // 3
      '@typescript-eslint/no-unused-expressions': 'warn', // 2
      'no-useless-assignment': 'warn', // 2
      '@typescript-eslint/no-this-alias': 'warn', // 1
      '@typescript-eslint/return-await': 'warn', // 1
      '@typescript-eslint/no-unsafe-argument': 'warn', // 9
      '@typescript-eslint/no-deprecated': 'warn', // 1
      '@typescript-eslint/no-unsafe-return': 'warn', // 1
      'preserve-caught-error': 'warn', // 1
      '@typescript-eslint/no-floating-promises': 'warn', // 1
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // noUncheckedIndexedAccess makes tests assert on fixtures they just built; a wrong index fails the test anyway.
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  {
    files: ['scripts/**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly' } },
    rules: {
      // CommonJS on purpose: .dependency-cruiser.cjs loads the layer map with require.
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
)
