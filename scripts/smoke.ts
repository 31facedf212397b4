import * as k from '../src/index.ts';
for (const name of ['wasm', 'webgpu'] as const) {
  const { backend } = await k.init(name);
  const a = k.tensor([[1, 2, 3], [4, 5, 6]]);
  const b = k.tensor([[1, 0], [0, 1], [1, 1]]);
  const c = k.matmul(a, b);
  console.log(name, await c.tolist());
  const x = k.randn([3, 5], { requiresGrad: true });
  const y = x.exp().sum();
  y.backward();
  console.log(name, (await y.item()).toFixed(4), Array.from(await x.grad!.toArray()).slice(0, 3), Array.from(await x.exp().toArray()).slice(0, 3));
  k.manualSeed(0);
  console.log(name, await k.softmax(k.tensor([1, 2, 3])).tolist(), await k.sum(k.tensor([[1, 2], [3, 4]]), 0).tolist());
  console.log(name, await k.tensor([[1,2,3]]).cast('f16').cast('f32').tolist(), await k.argmax(k.tensor([[1,5,3],[7,1,2]]), 1).tolist());
}
