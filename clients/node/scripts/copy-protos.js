'use strict';
// `npm pack` / `npm publish` (prepack): copies the repository's protos/ into the package, so that it works
// installed anywhere; postpack removes the copy, so that the repository reads its protos/ in one place.

const fs = require('node:fs');
const path = require('node:path');

const target = path.resolve(__dirname, '..', 'protos');
if (process.argv[2] === 'remove') {
  fs.rmSync(target, { recursive: true, force: true });
} else {
  fs.rmSync(target, { recursive: true, force: true });
  fs.cpSync(path.resolve(__dirname, '..', '..', '..', 'protos'), target, {
    recursive: true,
    filter: (source) => fs.statSync(source).isDirectory() || source.endsWith('.proto'),
  });
}
