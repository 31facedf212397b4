// What kiln asks of its host runtime, in one place: environment variables and Node-only modules.
// Browsers have neither; Deno has both, but reading the environment throws without --allow-env.

/** An environment variable, or undefined where there is no environment or reading it is refused. */
export function envVar(name: string): string | undefined {
  try {
    const g = globalThis as { process?: { env?: Record<string, string | undefined> }; Deno?: { env: { get(n: string): string | undefined } } };
    if (g.Deno) return g.Deno.env.get(name);
    return g.process?.env?.[name];
  } catch {
    return undefined; // Deno without --allow-env: a refused permission reads as unset
  }
}

/**
 * Imports a Node built-in (`node:fs/promises`, ...) at run time. The specifier is a variable, so
 * bundlers for the browser (esbuild, Vite, rollup) leave the import alone instead of failing to
 * resolve it; only paths that run in Node or Deno ever reach it.
 */
export async function nodeModule<T>(name: `node:${string}`): Promise<T> {
  const specifier: string = name;
  return (await import(/* @vite-ignore */ specifier)) as T;
}
