#!/usr/bin/env node
import { runProcess } from './cli/main.js';
await runProcess();
