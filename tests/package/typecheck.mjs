// Type-checks consumer projects (tsconfig paths as arguments) as tsc would with skipLibCheck off,
// but checks only kiln's declarations and the consumer's files: @types/node and the default libs
// are not kiln's to check, and checking them too took 10 s a project here. Prints the
// diagnostics and exits 1 when there are any. The projects share parsed files (keyed as TypeScript's
// own document registry keys them: by file, target and module format).
import ts from 'typescript';

const parsed = new Map();
const compilerHost = (options) => {
  const h = ts.createCompilerHost(options);
  const getSourceFile = h.getSourceFile;
  h.getSourceFile = (file, opts, ...rest) => {
    const key = `${file}|${typeof opts === 'object' ? `${opts.languageVersion}|${opts.impliedNodeFormat}` : opts}`;
    if (!parsed.has(key)) parsed.set(key, getSourceFile(file, opts, ...rest));
    return parsed.get(key);
  };
  return h;
};

const host = { getCanonicalFileName: (f) => f, getCurrentDirectory: ts.sys.getCurrentDirectory, getNewLine: () => '\n' };
let failed = false;
for (const path of process.argv.slice(2)) {
  const config = ts.getParsedCommandLineOfConfigFile(path, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => { throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n')); } });
  const program = ts.createProgram({ rootNames: config.fileNames, options: config.options, host: compilerHost(config.options) });
  const ours = program.getSourceFiles().filter((f) => !f.fileName.includes('/node_modules/') || f.fileName.includes('/node_modules/kiln/'));
  const diagnostics = [
    ...config.errors, ...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics(),
    ...ours.flatMap((f) => [...program.getSyntacticDiagnostics(f), ...program.getSemanticDiagnostics(f)]),
  ];
  if (!ours.some((f) => f.fileName.endsWith('/node_modules/kiln/dist/types/src/index.d.ts'))) diagnostics.push({ category: ts.DiagnosticCategory.Error, code: 0, file: undefined, start: undefined, length: undefined, messageText: "kiln's index.d.ts is not in the program" });
  if (diagnostics.length) {
    failed = true;
    console.log(`${path}:\n${ts.formatDiagnostics(diagnostics, host)}`);
  }
}
process.exit(failed ? 1 : 0);
