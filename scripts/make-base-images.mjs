#!/usr/bin/env node
// Makes the test base images with no network and imports them into a tsbuild store.
//
//   node scripts/make-base-images.mjs [--root DIR] [--layout DIR]
//
// Imports from ../dist (run `npm run build` first); the rootfs recipe is shared with
// test/helpers/base-images.ts through scripts/lib/busybox-rootfs.mjs (plain JS), so both give
// the same image digest. Result: `busybox:latest` (= docker.io/library/busybox:latest) in the
// store of DIR, and optionally an OCI layout (ref name `latest`) in --layout.
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { busyboxConfig, busyboxRootfsTar } from './lib/busybox-rootfs.mjs';

const { values } = parseArgs({ options: { root: { type: 'string' }, layout: { type: 'string' }, busybox: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
if (values.help) {
  process.stdout.write('Usage: node scripts/make-base-images.mjs [--root DIR] [--layout DIR] [--busybox /bin/busybox]\n(default root: $TSBUILD_ROOT, else ~/.local/share/tsbuild)\n');
  process.exit(0);
}
let oci;
try {
  oci = await import('../dist/oci/index.js');
} catch (err) {
  process.stderr.write(`make-base-images: cannot load ../dist/oci/index.js (run npm run build first): ${err.message}\n`);
  process.exit(1);
}
const { tar } = await busyboxRootfsTar({ busybox: values.busybox ?? '/bin/busybox', mtime: 0 });
const p = oci.hostPlatform();
const base = await oci.withConfig(oci.emptyImage({ platform: p }), { ...busyboxConfig(p), created: '1970-01-01T00:00:00Z' });
const image = await oci.appendLayers(base, {
  layer: oci.tarLayer(() => Readable.from([tar]), { compression: 'gzip' }),
  history: { created: '1970-01-01T00:00:00Z', created_by: 'tsbuild test fixture: busybox rootfs from Debian busybox-static' },
});
const store = await oci.Store.open({ root: oci.resolveRootDir({ root: values.root, env: process.env }) });
const desc = await oci.writeImage(store, image);
await store.tag('busybox:latest', desc);
if (values.layout) await (await oci.OciLayout.create(values.layout)).write(image, 'latest');
process.stdout.write(`busybox:latest ${desc.digest}\n`);
