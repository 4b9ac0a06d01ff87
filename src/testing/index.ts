/**
 * Test helpers for intersession and for adapters written by its users:
 * runner-agnostic contract suites for stores and transports, and a manual
 * clock for deterministic timing.
 *
 * @example
 * import { storeContract } from 'intersession/testing'
 * for (const c of storeContract(() => new MyStore())) it(c.name, () => c.run())
 *
 * @module
 */
export { check, checkEqual, checkRejects, ContractFailure, type ContractCase } from './contract.js'
export { storeContract } from './store-contract.js'
export { transportContract, type TransportContractOptions, type TransportPair } from './transport-contract.js'
export { ManualClock } from './manual-clock.js'
