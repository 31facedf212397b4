// The WebGPU names in kiln's public types, declared empty. A consumer without @webgpu/types (no
// DOM lib, or one without WebGPU) still type-checks kiln's declarations and sees these as opaque
// objects; one with @webgpu/types gets the full interfaces, since interface declarations merge.
export {};
declare global {
  interface GPU {}
  interface GPUAdapter {}
  interface GPUDevice {}
  interface GPUSupportedLimits {}
}
