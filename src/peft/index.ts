// PEFT on kiln (k.peft): LoRA, rsLoRA and DoRA adapters, in Hugging Face PEFT's files.
export { loraConfig, loraScaling, LORA_DEFAULTS, type LoraConfig, type InitLoraWeights } from './config.js';
export { LoraLinear, DoraMagnitude, AdapterDict, type AdapterSettings } from './lora.js';
export { getPeftModel, PeftModel, isTarget, SAME_NAMES, type PeftModelOptions } from './model.js';
export { savePretrained, loadAdapter, CONFIG_NAME, WEIGHTS_NAME, type SaveOptions, type LoadAdapterOptions } from './io.js';
export { addWeightedAdapter, hotswapAdapter, mergeTaskTensors, lowRankSvd, svdJacobi, type CombinationType, type TaskMethod, type WeightedAdapterOptions } from './combine.js';
