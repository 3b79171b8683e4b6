// Build an image from TypeScript/JavaScript, with progress events and the cache's explanations.
// Run from the repository root after `npm run build`:  node examples/library/build.mjs
import { build, BuildError } from '../../dist/index.js';

try {
  const result = await build({
    context: 'examples/hello',
    tags: ['hello:lib'],
    outputs: [{ type: 'image' }, { type: 'oci', dest: '/tmp/hello.oci.tar' }],
    onProgress(event) {
      if (event.type === 'step' && event.status !== 'started') console.log(`${event.status.padEnd(6)} ${event.name}`);
      if (event.type === 'output') process.stdout.write(`       | ${event.data}`);
    },
  });
  for (const step of result.steps) {
    console.log(`${step.status === 'cached' ? 'cached  ' : 'executed'} line ${step.line}: ${step.name}${step.reason ? ` (${step.reason})` : ''}`);
  }
  console.log(`image ${result.manifestDigest}, ${result.layers.length} layers`);
} catch (err) {
  if (err instanceof BuildError) console.error(await err.render());
  else throw err;
  process.exitCode = 1;
}
