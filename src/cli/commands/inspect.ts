import { parseArgs } from 'node:util';
import { resolveRoot, UsageError, type Command } from '../context.js';
import { Store } from '../../oci/store.js';
import { loadManifest, selectImage } from '../../oci/image.js';
import { formatPlatform, parsePlatform } from '../../oci/platform.js';
import { humanSize } from './images.js';

const USAGE = `Usage: tsbuild inspect [OPTIONS] IMAGE

Show an image's manifest, config, layers and sizes.

Options:
      --format string     Output format: text (default) or json
      --raw string        Print the raw bytes of the "manifest" or "config" (exactly as digested)
      --platform string   Pick this platform from a multi-platform index (default: the host)
      --root string       tsbuild root directory (default $TSBUILD_ROOT or ~/.local/share/tsbuild)
  -h, --help              Show this help
`;

export const run: Command = async (argv, ctx) => {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { format: { type: 'string' }, raw: { type: 'string' }, platform: { type: 'string' }, root: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    ctx.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`"inspect" requires exactly 1 argument\n\n${USAGE}`);
  const format = values.format ?? 'text';
  if (format !== 'text' && format !== 'json') throw new UsageError(`unknown --format ${JSON.stringify(format)}: want text or json`);
  if (values.raw !== undefined && values.raw !== 'manifest' && values.raw !== 'config') throw new UsageError(`unknown --raw ${JSON.stringify(values.raw)}: want manifest or config`);
  const platform = values.platform ? parsePlatform(values.platform) : undefined;
  const store = await Store.open({ root: resolveRoot(values.root, ctx) });
  const entry = await store.lookup(positionals[0]!);
  const top = await loadManifest(store, entry.descriptor);
  if (values.raw === 'manifest' && (top.kind === 'image' || !platform)) {
    ctx.stdout.write(await top.rawManifest());
    return 0;
  }
  const image = await selectImage(store, top, platform);
  if (values.raw === 'manifest') {
    ctx.stdout.write(await image.rawManifest());
    return 0;
  }
  if (values.raw === 'config') {
    ctx.stdout.write(await image.rawConfig());
    return 0;
  }
  const config = await image.config();
  const manifest = await image.manifest();
  const layers = await Promise.all(
    (await image.layers()).map(async (l, i) => ({ digest: await l.digest(), diffId: config.rootfs.diff_ids[i], size: await l.size(), mediaType: await l.mediaType() })),
  );
  const desc = await image.descriptor();
  const cfgDesc = await image.configDescriptor();
  const size = desc.size + cfgDesc.size + layers.reduce((a, l) => a + l.size, 0);
  const info = {
    name: entry.name,
    digest: entry.descriptor.digest,
    mediaType: entry.descriptor.mediaType,
    ...(top.kind === 'index' ? { index: await top.manifest(), manifestDigest: desc.digest } : {}),
    platform: formatPlatform({ os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) }),
    size,
    manifest,
    config,
    layers,
  };
  if (format === 'json') {
    ctx.stdout.write(JSON.stringify(info, null, 2) + '\n');
    return 0;
  }
  const c = config.config ?? {};
  const lines = [
    `Name:        ${info.name}`,
    `Digest:      ${info.digest}`,
    `MediaType:   ${info.mediaType}`,
    ...(top.kind === 'index' ? [`Manifest:    ${desc.digest} (${desc.mediaType})`] : []),
    `Platform:    ${info.platform}`,
    `Created:     ${config.created ?? 'N/A'}`,
    `Size:        ${humanSize(size)} (${size} bytes, compressed)`,
    `Config:      ${cfgDesc.digest} (${cfgDesc.size} bytes)`,
    ...(c.Entrypoint ? [`Entrypoint:  ${JSON.stringify(c.Entrypoint)}`] : []),
    ...(c.Cmd ? [`Cmd:         ${JSON.stringify(c.Cmd)}`] : []),
    ...(c.WorkingDir ? [`WorkingDir:  ${c.WorkingDir}`] : []),
    ...(c.User ? [`User:        ${c.User}`] : []),
    ...(c.Env ?? []).map((e, i) => `${i === 0 ? 'Env:         ' : '             '}${e}`),
    `Layers:      ${layers.length}`,
    ...layers.map((l) => `  ${l.digest}  ${humanSize(l.size).padStart(8)}  ${l.mediaType}`),
  ];
  ctx.stdout.write(lines.join('\n') + '\n');
  return 0;
};
