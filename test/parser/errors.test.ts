import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatDiagnostic, parseDockerfile } from '../../src/parser/index.js';

/**
 * Golden code frames: each test/fixtures/parser/<case>/Dockerfile is parsed and every diagnostic
 * rendered with formatDiagnostic; the frames, joined by blank lines, must equal expected.txt.
 * `TSBUILD_UPDATE_GOLDEN=1` writes missing expected files (review them before committing).
 */
const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/parser');
const cases = readdirSync(fixtures, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(path.join(fixtures, d.name, 'Dockerfile')))
  .map((d) => d.name)
  .sort();

describe('golden diagnostics (test/fixtures/parser)', () => {
  it('has cases', () => expect(cases.length).toBeGreaterThan(10));

  it.each(cases)('%s', (name) => {
    const dir = path.join(fixtures, name);
    const text = readFileSync(path.join(dir, 'Dockerfile'), 'utf8');
    const { diagnostics } = parseDockerfile(text, { file: 'Dockerfile' });
    expect(diagnostics.length).toBeGreaterThan(0);
    const actual = `${diagnostics.map((d) => formatDiagnostic(d, text)).join('\n\n')}\n`;
    const expectedFile = path.join(dir, 'expected.txt');
    if (!existsSync(expectedFile) && process.env.TSBUILD_UPDATE_GOLDEN === '1') writeFileSync(expectedFile, actual);
    expect(actual).toBe(readFileSync(expectedFile, 'utf8'));
  });
});
