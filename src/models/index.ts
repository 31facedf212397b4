export * from './config.js';
export * from './transformer.js';
export { exportStateDict, nameMapOf, type ExportOptions, type StateDict } from './export.js';
export { buildNameMap, placementOf, type NameMap, type NameFormat, type Placement } from './name-map.js';
export { loraFromCheckpoint, loraToCheckpoint, lorasToCheckpoint, type CheckpointLora, type KilnLora, type Mat } from './lora-map.js';
export { configFromHF, configToHF } from './hf.js';
