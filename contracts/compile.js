// Compiles the contracts with the solc-js pinned in package.json and writes, for every
// contract, <Name>.abi (JSON) and <Name>.bin (hex) into the output folder. Deterministic:
// the same sources and compiler give the same bytes. Usage: node compile.js OUTDIR
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const out = process.argv[2];
if (!out) {
  console.error('usage: node compile.js OUTDIR');
  process.exit(2);
}
const here = __dirname;
const files = ['src/JobMarket.sol', 'src/JobMarketV2.sol', 'src/PoolPayouts.sol', 'test/Mocks.sol'];
const sources = {};
for (const f of files) sources[f] = { content: fs.readFileSync(path.join(here, f), 'utf8') };

const input = {
  language: 'Solidity',
  sources,
  settings: {
    optimizer: { enabled: true, runs: 10000 },
    viaIR: true,
    evmVersion: 'cancun',
    metadata: { bytecodeHash: 'none', appendCBOR: false },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
};

function findImports(p) {
  const candidates = [path.join(here, 'node_modules', p), path.join(here, p)];
  for (const c of candidates) {
    if (fs.existsSync(c)) return { contents: fs.readFileSync(c, 'utf8') };
  }
  return { error: 'not found: ' + p };
}

const res = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
let failed = false;
for (const e of res.errors || []) {
  console.error(e.formattedMessage);
  if (e.severity === 'error') failed = true;
}
if (failed) process.exit(1);
fs.mkdirSync(out, { recursive: true });
for (const f of files) {
  for (const [name, c] of Object.entries(res.contracts[f] || {})) {
    if (!c.evm.bytecode.object) continue; // interfaces
    fs.writeFileSync(path.join(out, name + '.abi'), JSON.stringify(c.abi, null, 1) + '\n');
    fs.writeFileSync(path.join(out, name + '.bin'), c.evm.bytecode.object + '\n');
  }
}
console.error('solc ' + solc.version() + ': wrote ' + out);
