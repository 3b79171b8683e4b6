#!/usr/bin/env node
// The `tsbuild` command. The command line itself is a CommonJS script run with V8's code cache
// (cli/loader.ts): this file is built without bundling, to import the loader beside it.
import { loadCommandLine } from './cli/loader.js';

await loadCommandLine().runProcess();
