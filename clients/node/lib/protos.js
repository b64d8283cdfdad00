'use strict';
// Where the .proto files are: a packed package carries its own copy (protos/, made by scripts/copy-protos.js when
// `npm pack` or `npm publish` runs); in the repository they are read from its protos/, the one place they live.

const fs = require('node:fs');
const path = require('node:path');

const PACKED = path.resolve(__dirname, '..', 'protos');
const REPOSITORY = path.resolve(__dirname, '..', '..', '..', 'protos');
const PROTOS = fs.existsSync(path.join(PACKED, 'taskservice', 'v1', 'task_service.proto')) ? PACKED : REPOSITORY;

module.exports = { PROTOS };
