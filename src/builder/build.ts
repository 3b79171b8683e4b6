import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { lstatSync, readFileSync, statSync } from 'node:fs';
import { lchown, lstat, mkdir, readFile, readdir, rm, rmdir, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import { TsbuildError } from '../errors.js';
import { formatDiagnostic, type Diagnostic, type Range } from '../parser/diagnostics.js';
import type { Digest } from '../oci/digest.js';
import { formatPlatform, hostPlatform, parsePlatform, selectManifest } from '../oci/platform.js';
import { discard, header, httpFetch } from '../oci/registry/http.js';
import { Store, resolveRootDir } from '../oci/store.js';
import { MediaType, type ContainerConfig, type Descriptor, type History, type ImageConfig, type ImageIndex, type ImageManifest } from '../oci/types.js';
import type { CopySource } from './copy.js';
import { openContext, resolveInRoot, type BuildContext } from './context.js';
import type { LayerResult } from './layer.js';
import type { BuildOptions, BuildResult, OutputSpec, ProgressEvent, StepResult } from './options.js';
import type { TriggerParser } from './plan/plan.js';
import { loadParser, parseWithCache, planWithCache } from './parse-cache.js';
import type { BaseImageConfig, BuildGraph, CopyOp, ExecOp, FileSource, MkdirOp, StageOp, StagePlan } from './plan/types.js';
import type { SnapshotStore } from './snapshots.js';
import { CacheStore } from '../cache/store.js';
import { cacheKey, describeChanges, explain, FileSet, filesToKeep, type KeyManifest } from '../cache/keys.js';
import { ContextHasher, type HashRoot } from '../cache/context-hash.js';

/*
 * What a no-op rebuild never runs is imported where it is first needed (`await import(…)`): the
 * planner (the plan cache answers), COPY and layer writing, snapshots and overlay mounts, the
 * exporters. In the bundles each is a chunk of its own, so a fresh process that rebuilds nothing
 * neither compiles that code nor loads the node modules it uses (child_process, zlib, tar-stream).
 */
const planner = (): Promise<typeof import('./plan/plan.js')> => import('./plan/plan.js');

/** A build failure: parse/plan diagnostics, or a failing step with its instruction and output. */
export class BuildError extends TsbuildError {
  readonly diagnostics: readonly Diagnostic[];
  readonly file: string;
  readonly source: string;
  /** The failing step, for step errors. */
  readonly step?: { readonly name: string; readonly range: Range; readonly output?: string };
  constructor(
    code: string,
    message: string,
    init: { diagnostics?: readonly Diagnostic[]; file: string; source: string; step?: BuildError['step']; cause?: unknown },
  ) {
    super(code, message, init.cause !== undefined ? { cause: init.cause } : undefined);
    this.diagnostics = init.diagnostics ?? [];
    this.file = init.file;
    this.source = init.source;
    if (init.step) this.step = init.step;
  }

  /** The error as a terminal shows it: code frames for diagnostics, the step, its line and last output. */
  async render(_read?: (file: string) => Promise<string>): Promise<string> {
    const parts: string[] = [];
    for (const d of this.diagnostics) parts.push(formatDiagnostic(d, this.source, { file: d.file ?? this.file }));
    if (this.step) {
      const frame = formatDiagnostic({ code: this.code, severity: 'error', message: this.message, range: this.step.range }, this.source, { file: this.file });
      if (this.step.output) {
        const tail = this.step.output.trimEnd().split('\n').slice(-20).map((l) => `  > ${l}`).join('\n');
        parts.push(`${frame}\n  last output of [${this.step.name}]:\n${tail}`);
      } else parts.push(frame);
    }
    if (parts.length === 0) parts.push(`error: ${this.message}`);
    return parts.join('\n\n');
  }
}

/** A layer of a filesystem state: what a cache record keeps. */
export interface CachedLayer {
  readonly diffId: Digest;
  readonly digest: Digest;
  readonly size: number;
  readonly mediaType: string;
}

/** The filesystem a step sees: layers bottom first, plus the cache key of the chain. */
interface FsState {
  readonly layers: readonly CachedLayer[];
  /** Cache key of the op that produced this state ('' for scratch). */
  readonly key: string;
}

interface ResolvedImage {
  readonly ref: string;
  readonly manifestDigest: Digest;
  readonly config: ImageConfig;
  readonly layers: readonly CachedLayer[];
}

const SCRATCH: FsState = { layers: [], key: '' };

/** `addHosts` checked and normalized (`host-gateway` mapped, IPv6 canonical); a bad entry throws `TSBUILD_INVALID_HOST`. */
async function checkedHosts(hosts: NonNullable<BuildOptions['addHosts']>): Promise<NonNullable<BuildOptions['addHosts']>> {
  const { checkExtraHost } = await import('../runtime/spec.js');
  return hosts.map(checkExtraHost);
}

/** Builds an image: parse, plan, resolve bases, run steps with the cache, assemble, export. */
export async function build(opts: BuildOptions): Promise<BuildResult> {
  // Bad `addHosts` fail here, before anything is read; RUN steps see and key on the normalized ones.
  const options: BuildOptions = { ...opts, env: opts.env ?? process.env, ...(opts.addHosts?.length ? { addHosts: await checkedHosts(opts.addHosts) } : {}) };
  const emit = (e: ProgressEvent) => options.onProgress?.(e);
  const root = resolveRootDir({ root: options.root, env: options.env! });
  // The store and the cache are opened (directories made, dead writers' temp files swept) while
  // the Dockerfile is read, parsed and planned.
  const storeOpening = Store.open({ root });
  const cacheOpening = CacheStore.open(path.join(root, 'cache'));
  storeOpening.catch(() => {});
  cacheOpening.catch(() => {});
  const dockerfilePath = options.dockerfile ?? path.join(options.context, 'Dockerfile');
  const rel = path.relative(process.cwd(), dockerfilePath);
  // How messages name the Dockerfile: relative to the working directory when it is below it.
  const file = rel === '' ? 'Dockerfile' : rel.startsWith('..') || path.isAbsolute(rel) ? dockerfilePath : rel;
  let source: string;
  if (options.dockerfileText !== undefined) source = options.dockerfileText;
  else {
    try {
      source = readFileSync(dockerfilePath, 'utf8');
    } catch (cause) {
      throw new BuildError('TSBUILD_DOCKERFILE_NOT_FOUND', `failed to read dockerfile ${dockerfilePath}: ${(cause as Error).message}`, { file, source: '', cause });
    }
  }
  const fail = (diagnostics: readonly Diagnostic[]) => {
    const errors = diagnostics.filter((d) => d.severity === 'error');
    const first = errors[0]!;
    return new BuildError(first.code, `dockerfile parse error on line ${first.range.start.line}: ${first.message}`, { diagnostics: errors, file, source });
  };
  // The context and its hash index, opened now: a big context is then listed by the native
  // helper (ContextHasher.prefetch) while this process parses, plans and resolves base images.
  // Used only if the plan reads the context; a failure here is reported where it is used.
  const early = (async () => {
    const ctx = await openContext({ dir: options.context, dockerfile: dockerfilePath });
    const hasher = await ContextHasher.open(path.join(root, 'cache'), ctx.root);
    hasher.prefetch(ctx.ignore.empty ? undefined : (rel: string, isDir: boolean) => ctx.isHidden(rel, isDir));
    return { ctx, hasher };
  })();
  early.catch(() => {});
  // From the root's parse cache when this Dockerfile was parsed before: no parser to load.
  const parsedWith = await parseWithCache(root, source, file);
  const parsed = parsedWith.result;
  if (parsed.diagnostics.some((d) => d.severity === 'error')) throw fail(parsed.diagnostics);
  for (const d of parsed.diagnostics) emit({ type: 'log', level: 'warning', message: `${file}:${d.range.start.line}: ${d.message}` });

  const platform = options.platform ? formatPlatform(parsePlatform(options.platform)) : formatPlatform(hostPlatform());
  const planOptions = {
    ...(options.target !== undefined ? { target: options.target } : {}),
    buildArgs: options.buildArgs ?? {},
    platform,
    buildPlatform: formatPlatform(hostPlatform()),
    namedContexts: Object.keys(options.buildContexts ?? {}),
    source,
  };
  // Plans come from the root's plan cache too, named by the parse and every planner input.
  const { source: _text, ...planInputs } = planOptions; // the text is in the parse's name
  let planned = (await planWithCache(root, parsedWith.key, ['sources', planInputs], async () => (await planner()).planWith(undefined, parsed.ast, planOptions))).result;
  if (planned.diagnostics.some((d) => d.severity === 'error')) throw fail(planned.diagnostics);

  const store = await storeOpening;
  let snapshotStore: Promise<SnapshotStore> | undefined;
  const snapshots = (): Promise<SnapshotStore> => (snapshotStore ??= import('./snapshots.js').then((m) => new m.SnapshotStore(root)));
  const cache = await cacheOpening;

  // Resolve base images (reachable ones only), then plan again with their configs.
  const images = new Map<string, ResolvedImage>();
  for (const src of planned.graph.sources) {
    if (src.type !== 'tsbuild.source.image.v1') continue;
    const key = `${src.ref}@${src.platform}`;
    if (images.has(key)) continue;
    emit({ type: 'step', id: src.id, name: `[internal] load metadata for ${src.ref}`, status: 'started' });
    const t0 = Date.now();
    try {
      images.set(key, await resolveImage(store, root, src.ref, src.platform, options));
    } catch (err) {
      emit({ type: 'step', id: src.id, name: `[internal] load metadata for ${src.ref}`, status: 'error', error: (err as Error).message });
      const stage = planned.graph.stages.find((s) => s.base.kind === 'image' && s.base.op === src.id);
      throw new BuildError('TSBUILD_BASE_IMAGE', `failed to resolve base image ${src.ref}: ${(err as Error).message}`, {
        file,
        source,
        cause: err,
        ...(stage ? { step: { name: `FROM ${src.ref}`, range: stage.range } } : {}),
      });
    }
    emit({ type: 'step', id: src.id, name: `[internal] load metadata for ${src.ref}`, status: 'done', durationMs: Date.now() - t0 });
  }
  // Named contexts (--build-context) the plan reads: an image is resolved as a base image is; a
  // directory is read as the context is (its own .dockerignore, its own hash index).
  const namedContexts = new Map<string, ResolvedNamedContext>();
  const namedDirs: Promise<LocalSource>[] = [];
  for (const src of planned.graph.sources) {
    if (src.type !== 'tsbuild.source.context.v1' || namedContexts.has(src.name)) continue;
    const stage = planned.graph.stages.find((s) => s.base.kind === 'named-context' && s.base.op === src.id);
    const where = { file, source, ...(stage ? { step: { name: `FROM ${stage.baseName}`, range: stage.range } } : {}) };
    const spec = namedContextSpec(src.name, options.buildContexts?.[src.name] ?? '');
    if (spec.kind === 'error') throw new BuildError('TSBUILD_NAMED_CONTEXT', spec.message, where);
    if (spec.kind === 'scratch') {
      namedContexts.set(src.name, { kind: 'scratch' });
      continue;
    }
    if (spec.kind === 'dir') {
      let opening: Promise<LocalSource> | undefined;
      const open = () => {
        if (!opening) {
          opening = (async () => {
            const ctx = await openContext({ dir: spec.dir });
            return { ctx, hasher: await ContextHasher.open(path.join(root, 'cache'), ctx.root) };
          })();
          namedDirs.push(opening);
        }
        return opening;
      };
      namedContexts.set(src.name, { kind: 'dir', dir: spec.dir, open });
      continue;
    }
    const name = `[context ${src.name}] load metadata for ${spec.ref}`;
    emit({ type: 'step', id: src.id, name, status: 'started' });
    const t0 = Date.now();
    try {
      namedContexts.set(src.name, { kind: 'image', image: await resolveImage(store, root, spec.ref, platform, options) });
    } catch (err) {
      emit({ type: 'step', id: src.id, name, status: 'error', error: (err as Error).message });
      throw new BuildError('TSBUILD_BASE_IMAGE', `failed to resolve build context ${src.name} (${spec.ref}): ${(err as Error).message}`, { ...where, cause: err });
    }
    emit({ type: 'step', id: src.id, name, status: 'done', durationMs: Date.now() - t0 });
  }
  const contextImages = [...namedContexts].flatMap(([n, c]) => (c.kind === 'image' ? [[n, c.image] as const] : []));
  if (images.size > 0 || contextImages.length > 0) {
    // ONBUILD triggers of a base image are parsed when planned: load the parser for them.
    let parse: TriggerParser | undefined;
    if ([...images.values(), ...contextImages.map(([, i]) => i)].some((i) => (i.config.config?.OnBuild ?? []).length > 0)) parse = (await loadParser()).parseDockerfile;
    const inputs = ['images', planInputs, [...images].map(([k, img]) => [k, img.config]), ...(contextImages.length > 0 ? [contextImages.map(([n, img]) => [n, img.config])] : [])];
    planned = (await planWithCache(root, parsedWith.key, inputs, async () =>
      (await planner()).planWith(parse, parsed.ast, {
        ...planOptions,
        baseImage: (ref: string, p: string): BaseImageConfig | undefined => {
          const img = images.get(`${ref}@${p}`);
          return img?.config;
        },
        namedContextImage: (name: string): BaseImageConfig | undefined => {
          const c = namedContexts.get(name);
          return c?.kind === 'image' ? c.image.config : undefined;
        },
      }),
    )).result;
    if (planned.diagnostics.some((d) => d.severity === 'error')) throw fail(planned.diagnostics);
  }
  const graph = planned.graph;

  const needsContext = graph.stages.some(
    (s) =>
      s.reachable &&
      s.ops.some((o) => (o.type === 'tsbuild.file.copy.v1' && o.from.kind === 'context') || (o.type === 'tsbuild.exec.v1' && o.mounts.some((m) => m.type === 'bind' && m.from.kind === 'context'))),
  );
  const opened = needsContext ? await early.catch(() => undefined) : undefined;
  const context = needsContext ? (opened?.ctx ?? (await openContext({ dir: options.context, dockerfile: dockerfilePath }))) : undefined;

  const hasher = context ? (opened?.hasher ?? (await ContextHasher.open(path.join(root, 'cache'), context.root))) : undefined;
  // One failing step stops the others, when it fails: they get this signal (its reason is the
  // first error, which they throw), and build() returns only once they have stopped.
  const stop = new AbortController();
  const onAbort = () => stop.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const stopWith = (err: unknown) => {
    if (!stop.signal.aborted) stop.abort(err);
  };
  const solver = new Solver({ options: { ...options, signal: stop.signal }, graph, store, snapshots, cache, images, context, hasher, emit, file, source, root, dockerfilePath, fail: stopWith, namedContexts });
  // The hash indexes of the context and of named directories that were read.
  const saveIndexes = async () => {
    const opened = await Promise.allSettled(namedDirs);
    await Promise.all([hasher?.save(), ...opened.map((o) => (o.status === 'fulfilled' ? o.value.hasher.save() : undefined))]);
  };
  let state: FsState;
  try {
    state = await solver.stage(graph.target);
  } catch (err) {
    stopWith(err);
    await solver.settled();
    await solver.close().catch(() => {}); // the step's error is the one to report
    await saveIndexes().catch(() => {}); // the step's error is the one to report
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
  // The context index is saved while the image is written (each is a temp file, an fsync and a
  // rename); build() returns once both are done.
  const indexSaved = saveIndexes();
  indexSaved.catch(() => {}); // awaited below, whatever happens
  try {
    await solver.close();
    const target = graph.stages[graph.target]!;
    const base = baseImageOf(graph, target, images, namedContexts);

    // Assemble the image config.
    const labels = { ...(target.config.Labels ?? {}), ...(options.labels ?? {}) };
    // The creation time: SOURCE_DATE_EPOCH, else now; but a rebuild of exactly the same image
    // (same layers, same config) keeps the time of the first build, so a no-op rebuild gives the
    // same image ID, as BuildKit's does.
    const imageKey = `sha256:${createHash('sha256').update(JSON.stringify(['tsbuild.image-created.v1', state.key, state.layers.map((l) => l.diffId), target.config, labels, target.history, target.platform, base?.manifestDigest ?? null])).digest('hex')}` as Digest;
    let created: string;
    if (options.sourceDateEpoch !== undefined) created = new Date(options.sourceDateEpoch * 1000).toISOString();
    else {
      const prev = options.noCache ? undefined : ((await cache.get(imageKey))?.result as { created?: string } | undefined);
      created = prev?.created ?? new Date().toISOString();
      if (!prev?.created) await cache.put({ key: imageKey, result: { created }, size: 0, description: `image created time for stage ${target.displayName}` });
    }
    const containerConfig: ContainerConfig = { ...target.config, ...(Object.keys(labels).length ? { Labels: labels } : {}) };
    const p = parsePlatform(target.platform);
    const history: History[] = [...(base?.config.history ?? []), ...target.history.map((h) => ({ created, ...h }))];
    const imageConfig: ImageConfig = {
      created,
      ...(target.author !== undefined ? { author: target.author } : base?.config.author !== undefined ? { author: base.config.author } : {}),
      architecture: p.architecture,
      os: p.os,
      ...(p.variant ? { variant: p.variant } : {}),
      config: containerConfig,
      rootfs: { type: 'layers', diff_ids: state.layers.map((l) => l.diffId) },
      history,
    };
    const configBytes = Buffer.from(JSON.stringify(imageConfig));
    // Named before it is written, so that the manifests are written beside it, not after it.
    const config = { digest: `sha256:${createHash('sha256').update(configBytes).digest('hex')}` as Digest, size: configBytes.length };
    const configPut = store.putBlob(configBytes, config);
    configPut.catch(() => {}); // awaited below
    const tags = [...(options.tags ?? [])];
    const outputs = options.outputs && options.outputs.length > 0 ? options.outputs : tags.length > 0 ? [{ type: 'image' as const }] : [];
    // One manifest per layer compression the outputs ask for; the local one keeps the layers as built.
    const manifests = new Map<string, Promise<{ desc: Descriptor; layers: Descriptor[] }>>();
    const manifestFor = (c: OutputCompression | undefined) => {
      const k = c ? `${c.compression}:${c.level}` : 'local';
      let m = manifests.get(k);
      if (!m) {
        m = (async () => {
          const layers: Descriptor[] = [];
          for (const l of state.layers) layers.push(c ? await compressedLayer(store, cache, l, c) : { mediaType: l.mediaType, digest: l.digest, size: l.size });
          const manifest: ImageManifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: config.digest, size: config.size }, layers };
          const put = await store.putBlob(Buffer.from(JSON.stringify(manifest)));
          return { desc: { mediaType: MediaType.OciManifest, digest: put.digest, size: put.size, platform: p }, layers };
        })();
        manifests.set(k, m);
      }
      return m;
    };
    let exported = await manifestFor(undefined);
    await configPut;
    let compressedOne = false;
    for (const out of outputs) {
      const c = outputCompression(out);
      const m = await manifestFor(c);
      if (c && !compressedOne) [exported, compressedOne] = [m, true];
      const { exportImage } = await import('./export.js');
      await exportImage(out, { store, cache, manifest: m.desc, tags, platform: p, root, env: options.env!, ...(options.signal ? { signal: options.signal } : {}), ...(options.sourceDateEpoch !== undefined ? { sourceDateEpoch: options.sourceDateEpoch } : {}) });
    }
    await indexSaved;
    return {
      manifestDigest: exported.desc.digest,
      configDigest: config.digest,
      platform: p,
      tags,
      config: imageConfig,
      layers: exported.layers,
      steps: solver.steps,
      cachedSteps: solver.cachedSteps,
      executedSteps: solver.executedSteps,
      diagnostics: [...parsed.diagnostics, ...planned.diagnostics],
    };
  } catch (err) {
    await indexSaved?.catch(() => {}); // the index is saved, or not, before build() fails
    throw err;
  }
}

/**
 * What a file op writes, whatever it is written onto: the op, its non-parent inputs (a COPY
 * --from source), the files it reads and the values it sees; not its parent.
 */
function fileContentKey(manifest: KeyManifest): Digest {
  const { parent: _parent, ...inputs } = manifest.inputs;
  return `sha256:${createHash('sha256').update(JSON.stringify(['tsbuild.file-content.v1', manifest.op, inputs, manifest.filesDigest, manifest.values])).digest('hex')}` as Digest;
}

interface OutputCompression {
  readonly compression: 'gzip' | 'zstd';
  readonly level: number;
}

/**
 * The compression an output wants for the layers this build made, or undefined to keep them
 * uncompressed: a local image (no push) and filesystem outputs keep them; anything that leaves
 * the machine gets gzip unless `compression=` says otherwise.
 */
function outputCompression(out: OutputSpec): OutputCompression | undefined {
  if (out.type === 'local' || out.type === 'tar') return undefined;
  const asked = out.compression;
  if (asked === 'uncompressed') return undefined;
  if (asked === undefined && out.type === 'image' && !out.push) return undefined;
  const compression = asked ?? 'gzip';
  return { compression, level: out.compressionLevel ?? (compression === 'gzip' ? 6 : 3) };
}

/**
 * A build layer in the asked compression. The compressed blob is made once per layer and
 * compression, remembered in the cache (a record keyed by diffID + compression + level).
 * Layers that are already compressed (the base image's) are kept as they are.
 */
async function compressedLayer(store: Store, cache: CacheStore, l: CachedLayer, c: OutputCompression): Promise<Descriptor> {
  if ((await import('../oci/compress.js')).compressionOfMediaType(l.mediaType) !== 'none') return { mediaType: l.mediaType, digest: l.digest, size: l.size };
  const key = `sha256:${createHash('sha256').update(JSON.stringify(['tsbuild.compressed-layer.v1', l.diffId, c.compression, c.level])).digest('hex')}` as Digest;
  const hit = (await cache.get(key))?.result as { digest: Digest; size: number; mediaType: string } | undefined;
  if (hit && (await store.hasBlob(hit.digest))) return { mediaType: hit.mediaType, digest: hit.digest, size: hit.size };
  const made = await (await import('./layer.js')).compressBlob(store.blobsDir, l.diffId, { compression: c.compression, level: c.level });
  await cache.put({ key, result: { ...made }, size: made.size, description: `${c.compression} of layer ${l.diffId}` });
  return { mediaType: made.mediaType, digest: made.digest, size: made.size };
}

function baseImageOf(graph: BuildGraph, stage: StagePlan, images: Map<string, ResolvedImage>, named: ReadonlyMap<string, ResolvedNamedContext>): ResolvedImage | undefined {
  let s: StagePlan | undefined = stage;
  while (s) {
    if (s.base.kind === 'image') {
      const ref = s.base.ref;
      return images.get(`${ref}@${s.platform}`) ?? [...images.values()].find((i) => i.ref === ref);
    }
    if (s.base.kind === 'named-context') {
      const c = named.get(s.base.name);
      return c?.kind === 'image' ? c.image : undefined;
    }
    s = s.base.kind === 'stage' ? graph.stages[s.base.stage] : undefined;
  }
  return undefined;
}

/**
 * What a `--build-context NAME=VALUE` names, as buildx reads it: `docker-image://REF` (an image
 * from the store or a registry; `docker-image://scratch` is empty), `oci-layout://PATH[:TAG|@DIGEST]`,
 * or a local directory (relative to the working directory). Git and URL contexts are not read.
 */
function namedContextSpec(name: string, value: string): { kind: 'image'; ref: string } | { kind: 'scratch' } | { kind: 'dir'; dir: string } | { kind: 'error'; message: string } {
  const flag = `--build-context ${name}=${value}`;
  if (value === '') return { kind: 'error', message: `${flag}: no value` };
  if (value.startsWith('docker-image://')) {
    const ref = value.slice('docker-image://'.length);
    if (ref === '') return { kind: 'error', message: `${flag}: no image after docker-image://` };
    return ref === 'scratch' ? { kind: 'scratch' } : { kind: 'image', ref };
  }
  if (value.startsWith('oci-layout://')) {
    const l = parseLayoutRef(value, process.cwd())!;
    return { kind: 'image', ref: `oci-layout://${l.dir}${l.ref === undefined ? '' : /^sha256:/.test(l.ref) ? `@${l.ref}` : `:${l.ref}`}` };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value);
  if (scheme || value.startsWith('git@') || value.startsWith('target:')) {
    const what = scheme ? `${scheme[1]}:// contexts are` : 'this kind of context is';
    return { kind: 'error', message: `${flag}: ${what} not supported (a directory, docker-image:// or oci-layout:// is)` };
  }
  const dir = path.resolve(value);
  let st;
  try {
    st = statSync(dir);
  } catch {
    return { kind: 'error', message: `${flag}: ${dir} not found` };
  }
  if (!st.isDirectory()) return { kind: 'error', message: `${flag}: ${dir} is not a directory` };
  return { kind: 'dir', dir };
}

/** `oci-layout://PATH[:TAG|@DIGEST]`: an image in an OCI layout directory (relative paths from the context). */
function parseLayoutRef(ref: string, contextDir: string): { dir: string; ref?: string } | undefined {
  if (!ref.startsWith('oci-layout://')) return undefined;
  const rest = ref.slice('oci-layout://'.length);
  const at = rest.lastIndexOf('@');
  const colon = rest.lastIndexOf(':');
  const slash = rest.lastIndexOf('/');
  const cut = at > slash ? at : colon > slash ? colon : -1;
  const dir = path.resolve(contextDir, cut >= 0 ? rest.slice(0, cut) : rest);
  return cut >= 0 ? { dir, ref: rest.slice(cut + 1) } : { dir };
}

async function resolveImage(store: Store, root: string, ref: string, platform: string, options: BuildOptions): Promise<ResolvedImage> {
  const layoutRef = parseLayoutRef(ref, options.context);
  let entry = options.pull || layoutRef ? undefined : await store.resolve(ref);
  if (layoutRef) {
    // Copy the image's blobs into the store (idempotent), then read it from there.
    const { OciLayout } = await import('../oci/layout.js');
    const { writeImage } = await import('../oci/image.js');
    let item;
    try {
      item = await (await OciLayout.open(layoutRef.dir)).item(layoutRef.ref);
    } catch (cause) {
      throw new TsbuildError('TSBUILD_IMAGE_NOT_FOUND', (cause as Error).message, { cause });
    }
    entry = { descriptor: await writeImage(store, item) } as NonNullable<typeof entry>;
  } else if (!entry) {
    const { pull } = await import('../oci/registry/pull.js');
    await pull(ref, { root, platform, env: options.env!, ...(options.signal ? { signal: options.signal } : {}) });
    entry = await store.resolve(ref);
    if (!entry) throw new TsbuildError('TSBUILD_IMAGE_NOT_FOUND', `image ${ref} not found after pull`);
  }
  let desc: Descriptor = entry.descriptor;
  let raw = await store.readBlob(desc.digest);
  let doc = JSON.parse(raw.toString()) as ImageManifest | ImageIndex;
  if ('manifests' in doc) {
    const chosen = selectManifest(doc.manifests, parsePlatform(platform));
    if (!chosen) throw new TsbuildError('TSBUILD_NO_MATCHING_PLATFORM', `image ${ref} has no manifest for ${platform} (has ${doc.manifests.map((d) => (d.platform ? formatPlatform(d.platform) : '?')).join(', ')})`);
    desc = chosen;
    raw = await store.readBlob(desc.digest);
    doc = JSON.parse(raw.toString()) as ImageManifest;
  }
  const manifest = doc as ImageManifest;
  const config = JSON.parse((await store.readBlob(manifest.config.digest)).toString()) as ImageConfig;
  // A single-platform image (what a pull tags, or a layout holds) must be for the platform
  // asked: an amd64 busybox is no arm64 base (its RUN steps ran on the host's arch while the
  // config said arm64). Compared as manifests are chosen from an index.
  if (config.os && config.architecture) {
    const has = { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
    if (!selectManifest([{ ...manifest.config, platform: has }], parsePlatform(platform))) {
      throw new TsbuildError('TSBUILD_NO_MATCHING_PLATFORM', `image ${ref} is for ${formatPlatform(has)}, not ${platform}${layoutRef || options.pull ? '' : ` (pull it for ${platform} with --pull, or build for ${formatPlatform(has)})`}`);
    }
  }
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) throw new TsbuildError('TSBUILD_BAD_IMAGE', `image ${ref}: config lists ${diffIds.length} diff_ids for ${manifest.layers.length} layers`);
  return {
    ref,
    manifestDigest: desc.digest,
    config,
    layers: manifest.layers.map((l, i) => ({ diffId: diffIds[i]!, digest: l.digest, size: l.size, mediaType: l.mediaType })),
  };
}

interface SolverInit {
  readonly options: BuildOptions;
  readonly graph: BuildGraph;
  readonly store: Store;
  /** The snapshot store, made when a step first needs it. */
  readonly snapshots: () => Promise<SnapshotStore>;
  readonly cache: CacheStore;
  readonly hasher: ContextHasher | undefined;
  readonly dockerfilePath: string;
  readonly images: Map<string, ResolvedImage>;
  readonly context: BuildContext | undefined;
  readonly emit: (e: ProgressEvent) => void;
  readonly file: string;
  readonly source: string;
  readonly root: string;
  /**
   * Called with the first error of any stage, when it happens: build() aborts `options.signal`
   * with it, so the steps still running stop at once (as BuildKit cancels them) and the error is
   * reported without waiting for stages the failed one was not waiting for.
   */
  readonly fail: (err: unknown) => void;
  /** Named contexts (`--build-context`) the plan uses, resolved. */
  readonly namedContexts: ReadonlyMap<string, ResolvedNamedContext>;
}

/** A `--build-context` value, resolved: an image, or a directory read as the context is. */
export type ResolvedNamedContext =
  | { readonly kind: 'image'; readonly image: ResolvedImage }
  | { readonly kind: 'scratch' }
  | { readonly kind: 'dir'; readonly dir: string; readonly open: () => Promise<LocalSource> };

/** A directory steps read from: the build context or a named one, its ignore rules and hash index. */
interface LocalSource {
  readonly ctx: BuildContext;
  readonly hasher: ContextHasher;
}

/**
 * Steps run at once by default: every independent stage of a usual Dockerfile (up to 8, as
 * BuildKit, which sets no limit, would run them), and beyond that twice the CPUs, so that one
 * step's waits (its layer's fsync, its diff) leave the CPUs to another's command. With as many
 * steps as CPUs, 06-wide-dag's six CPU-bound RUNs ran in pairs on 2 CPUs, each pair's tail and
 * set-up leaving a CPU idle: 4.80 s against 4.48 s with all six at once (medians of 6, cold).
 */
export function defaultParallelism(): number {
  return Math.max(8, 2 * availableParallelism());
}

/** Walks the graph: stages in parallel where independent, ops in order, identical ops once. */
class Solver {
  cachedSteps = 0;
  executedSteps = 0;
  readonly steps: StepResult[] = [];
  readonly #i: SolverInit;
  readonly #stages = new Map<number, Promise<FsState>>();
  readonly #inflight = new Map<string, Promise<FsState>>();
  readonly #limit: ReturnType<typeof pLimit>;
  #runtime: Promise<import('../runtime/sandbox.js').Runtime> | undefined;
  /** Snapshot directories by diffID, for this build. */
  readonly #snapshotDirs = new Map<Digest, Promise<string>>();
  #emptyDir: Promise<string> | undefined;
  /** Mounted read-only views, by their lower dirs (see `#view`); unmounted by `close()`. */
  readonly #views = new Map<string, Promise<{ dir: string; close: () => Promise<void> }>>();
  #closed = false;
  /** Context hashings of this build, by sources and excludes (see `#contextFiles`). */
  readonly #contextSets = new Map<string, Promise<FileSet>>();
  readonly #hashRoots = new Map<string, HashRoot>();

  constructor(init: SolverInit) {
    this.#i = init;
    this.#limit = pLimit(Math.max(1, init.options.parallelism ?? defaultParallelism()));
  }

  /** Resolves once every started stage and step has finished, failed or stopped. */
  async settled(): Promise<void> {
    let n = -1;
    // Settling may start nothing new (the signal is aborted), but loop until the sets are stable.
    while (n !== this.#stages.size + this.#inflight.size + this.#contextSets.size) {
      n = this.#stages.size + this.#inflight.size + this.#contextSets.size;
      await Promise.allSettled([...this.#stages.values(), ...this.#inflight.values(), ...this.#contextSets.values()]);
    }
  }

  stage(index: number): Promise<FsState> {
    let p = this.#stages.get(index);
    if (!p) {
      p = this.#buildStage(index);
      // A stage is started before the step that needs it waits for it (its dependants start it
      // early, to run it in parallel): its failure stops the build now, and is handled here, so
      // that a second failing stage nobody waits for yet is no unhandled rejection (which would
      // end the process). Its waiters still get the error.
      p.catch((err: unknown) => this.#i.fail(err));
      this.#stages.set(index, p);
    }
    return p;
  }

  async #buildStage(index: number): Promise<FsState> {
    const { graph, images } = this.#i;
    const stage = graph.stages[index]!;
    // Start the stages this one depends on now, so they run in parallel.
    const deps = new Map(stage.dependsOn.map((e) => [e.stage, this.stage(e.stage)]));
    // Hash what this stage's COPYs read from the context now, while the steps before them run
    // (their keys need it; it depends on no step). An error is the step's, when it gets there.
    for (const op of stage.ops) {
      if (op.type !== 'tsbuild.file.copy.v1' || op.from.kind !== 'context') continue;
      const paths = contextPaths(op);
      if (paths.length > 0) this.#contextFiles(paths, op.exclude).catch(() => {});
    }
    const noCache = this.#i.options.noCache === true || (this.#i.options.noCacheFilter ?? []).some((n) => n.toLowerCase() === stage.name || n === String(index));
    let state: FsState;
    switch (stage.base.kind) {
      case 'scratch':
        state = SCRATCH;
        break;
      case 'image': {
        const img = images.get(`${stage.base.ref}@${stage.platform}`) ?? [...images.values()].find((i) => i.ref === (stage.base as { ref: string }).ref);
        if (!img) throw new TsbuildError('TSBUILD_INTERNAL', `base image ${stage.base.ref} was not resolved`);
        state = imageState(img);
        break;
      }
      case 'stage':
        state = await (deps.get(stage.base.stage) ?? this.stage(stage.base.stage));
        break;
      case 'named-context': {
        // A directory as a stage's base: its files (after its .dockerignore) as one layer, as
        // `COPY . /` onto scratch would make it, keyed by their content.
        const { name, op } = stage.base;
        state = (await this.#sourceState({ kind: 'named-context', name, op })) ?? (await this.#op(namedContextRootOp(stage, stage.base, this.#namedDir(name)), SCRATCH, noCache));
        break;
      }
    }
    for (const op of stage.ops) {
      if (op.type === 'tsbuild.config.v1') continue;
      state = await this.#op(op, state, noCache);
    }
    return state;
  }

  async #sourceState(src: FileSource): Promise<FsState | undefined> {
    switch (src.kind) {
      case 'context':
        return undefined;
      case 'stage':
        return this.stage(src.stage);
      case 'image': {
        const img = [...this.#i.images.values()].find((i) => i.ref === src.ref);
        if (img) return imageState(img);
        throw new TsbuildError('TSBUILD_UNSUPPORTED', `--from=${src.ref}: image was not resolved`);
      }
      case 'named-context': {
        const nc = this.#namedContext(src.name);
        return nc.kind === 'image' ? imageState(nc.image) : nc.kind === 'scratch' ? SCRATCH : undefined;
      }
    }
  }

  /**
   * A bind mount's source in the context (or a named directory) as BuildKit sends it: without
   * what its .dockerignore excludes (a RUN could otherwise read, or copy into its layer, a file
   * the ignore rules keep out, and its key would not see it change). With no rules, or nothing
   * hidden below the source, the directory itself; else a masked read-only view, once per build.
   */
  async #localView(local: LocalSource, source: string, what: 'bind' | 'cache'): Promise<string> {
    const { ctx } = local;
    // Resolved inside the context, symlinks as if it were `/` (as BuildKit resolves it in the
    // context it was sent): the host follows the path given to mount(2), and a context's
    // `hostroot -> /` must not bind the host's root.
    const r = await resolveInRoot(ctx.root, source);
    const isDir = lstatSyncOrUndefined(r.abs)?.isDirectory() ?? false;
    if (r.rel !== '' && ctx.isHidden(r.rel, isDir)) {
      throw new TsbuildError('TSBUILD_MOUNT_SOURCE', `${what} mount source ${source} is excluded by ${ctx.ignoreFile ?? '.dockerignore'}`);
    }
    if (!r.exists) throw new TsbuildError('TSBUILD_MOUNT_SOURCE', `${what} mount source ${source} not found in the ${ctx.root === this.#i.context?.root ? 'build context' : `context ${ctx.root}`}`);
    const { rel, abs } = r;
    if (ctx.ignore.empty || !isDir) return abs;
    const id = `mask:${abs}`;
    let v = this.#views.get(id);
    if (!v) {
      if (this.#closed) throw new TsbuildError('TSBUILD_INTERNAL', 'a view was asked for after the build ended');
      v = (async () => {
        const hidden = await hiddenBelow(ctx, rel);
        if (hidden.length === 0) return { dir: abs, close: async () => {} };
        const { mountMaskedView } = await import('./snapshots.js');
        return this.#mountedView('b', (parent, dir) => mountMaskedView(abs, hidden, path.join(parent, 'mask'), dir));
      })();
      this.#views.set(id, v);
    }
    return (await v).dir;
  }

  #namedContext(name: string): ResolvedNamedContext {
    const nc = this.#i.namedContexts.get(name);
    if (!nc) throw new TsbuildError('TSBUILD_INTERNAL', `named context ${name} was not resolved`);
    return nc;
  }

  #namedDir(name: string): string {
    const nc = this.#namedContext(name);
    if (nc.kind !== 'dir') throw new TsbuildError('TSBUILD_INTERNAL', `named context ${name} is not a directory`);
    return nc.dir;
  }

  /**
   * The host path a RUN mount (`bind`, or a `cache` seed) of `source` in `from` reads: inside the
   * stage's view, or the context's (or a named directory's) masked view; resolved in that root,
   * symlinks as if it were `/`: the host follows the path given to mount(2), and a stage's
   * `ln -s / /up` must not bind the host's root.
   */
  async #mountSource(from: FileSource, source: string, what: 'bind' | 'cache'): Promise<{ path: string; state: FsState | undefined }> {
    const state = await this.#sourceState(from);
    if (!state) return { path: await this.#localView(await this.#local(from), source, what), state };
    const r = await resolveInRoot(await this.#view(state), source);
    if (!r.exists) throw new TsbuildError('TSBUILD_MOUNT_SOURCE', `${what} mount source ${source} not found in ${describeSource(from)}`);
    return { path: r.abs, state };
  }

  /** The directory a step reads when its source is no stage or image: the context, or a named directory. */
  async #local(src: FileSource): Promise<LocalSource> {
    if (src.kind === 'named-context') {
      const nc = this.#namedContext(src.name);
      if (nc.kind === 'dir') return nc.open();
    }
    return { ctx: this.#i.context!, hasher: this.#i.hasher! };
  }

  async #op(op: StageOp, parent: FsState, noCache: boolean): Promise<FsState> {
    // COPY --link (BuildKit: without --chmod): the files are copied onto an empty root and the
    // layer is put on top of the parent, so its key does not depend on the parent and a changed
    // base image, or an earlier step, reuses it. A --chown by name needs the parent's
    // /etc/passwd: such a COPY is made as a plain one.
    if (op.type === 'tsbuild.file.copy.v1' && op.link && !op.chmod && !(op.chown && /[^0-9:]/.test(op.chown))) {
      const linked = await this.#keyedOp(op, SCRATCH, {}, noCache);
      const key = `sha256:${createHash('sha256').update(`link\0${parent.key}\0${linked.key}`).digest('hex')}`;
      return { layers: [...parent.layers, ...linked.layers], key };
    }
    return this.#keyedOp(op, parent, { parent: parent.key }, noCache);
  }

  async #keyedOp(op: StageOp, parent: FsState, inputs: Record<string, string>, noCache: boolean): Promise<FsState> {
    let files: Record<string, string> | FileSet | undefined;
    if (op.type === 'tsbuild.file.copy.v1') {
      const s = await this.#sourceState(op.from);
      if (s) inputs.source = s.key;
      else {
        const paths = contextPaths(op);
        if (paths.length > 0) files = await this.#contextFiles(paths, op.exclude, op.from);
      }
      // A git repository as BuildKit recognizes one (git@…, git://, ssh://, an http(s) URL of a
      // .git path): refused, not downloaded as a web page or looked for as a context path.
      const git = op.instruction === 'ADD' ? op.sources.find(isGitSource) : undefined;
      if (git !== undefined) throw new TsbuildError('TSBUILD_UNSUPPORTED', `ADD of a git repository (${git}) is not supported: clone it into the context, or ADD an archive URL`);
      // ADD URL: the remote file is an input. With --checksum it is the checksum (in the op);
      // else what the server says identifies this version (ETag, Last-Modified, length).
      if (!op.checksum) for (const url of op.sources.filter(isUrl)) inputs[`url:${url}`] = await remoteVersion(url, this.#i.options.signal);
    } else if (op.type === 'tsbuild.exec.v1') {
      for (const m of op.mounts) {
        if ((m.type === 'bind' || m.type === 'cache') && m.from) {
          const s = await this.#sourceState(m.from);
          if (s) inputs[`mount:${m.target}`] = s.key;
          else if (m.type === 'bind') {
            const f = (await this.#contextFiles([m.source], [], m.from)).record();
            const bound: Record<string, string> = (files as Record<string, string> | undefined) ?? {};
            for (const [k, v] of Object.entries(f)) bound[`${m.target}:${k}`] = v;
            files = bound;
          }
        }
      }
    }
    // --add-host and a build-wide --network none are part of a RUN's key, as in BuildKit (ExecOp's
    // Meta.ExtraHosts and Network); without them the key is as before (the default network is the host's).
    const values: Record<string, string> = {};
    if (op.type === 'tsbuild.exec.v1') {
      const hosts = this.#i.options.addHosts ?? [];
      if (hosts.length > 0) values['add-host'] = hosts.map((h) => `${h.host}=${h.ip}`).join(',');
      if (op.network === 'default' && runNetwork(op, this.#i.options) === 'none') values.network = 'none';
      // BuildKit's ExecOp keys a hostname given with the BUILDKIT_SANDBOX_HOSTNAME build arg
      const hostname = this.#i.options.buildArgs?.BUILDKIT_SANDBOX_HOSTNAME;
      if (hostname) values.hostname = hostname;
    }
    const { key, manifest } = cacheKey({ op, inputs, ...(files ? { files } : {}), ...(Object.keys(values).length > 0 ? { values } : {}) });
    const existing = this.#inflight.get(key);
    if (existing) return existing;
    const p = this.#limit(() => this.#runOp(op, parent, key, manifest, files, noCache));
    this.#inflight.set(key, p);
    return p;
  }

  /** Stable name of a step across builds, to explain cache misses. */
  #stepId(op: StageOp): string {
    return `${this.#i.dockerfilePath}#${op.meta.stageName}#${op.id}`;
  }

  /** `manifest` has no file list when `files` is a `FileSet`: a miss is explained from the set, and the set is kept beside the record. */
  async #runOp(op: StageOp, parent: FsState, key: string, manifest: KeyManifest, files: Record<string, string> | FileSet | undefined, noCache: boolean): Promise<FsState> {
    const { emit, store, cache } = this.#i;
    const name = op.meta.step > 0 ? `[${op.meta.stageName} ${op.meta.step}/${op.meta.steps}] ${op.meta.name}` : op.meta.name;
    const stepId = this.#stepId(op);
    this.#i.options.signal?.throwIfAborted();
    let reason: string | undefined;
    let prev: Awaited<ReturnType<typeof cache.previous>>;
    // A snapshot to hard-link unchanged files from: one written by the same file op on the same
    // files (another stage, or another parent), else this step's previous build. Looked up
    // while the other records are read; awaited (and its error thrown) when the step runs.
    const sameContent = op.type === 'tsbuild.file.copy.v1' ? fileContentKey(manifest) : undefined;
    let twinLookup: Promise<Digest | undefined> | undefined;
    const twin = (): Promise<Digest | undefined> => {
      twinLookup ??= sameContent && !noCache ? cache.get(sameContent).then((r) => (r?.result as { diffId?: Digest } | undefined)?.diffId) : Promise.resolve(undefined);
      return twinLookup;
    };
    if (!noCache) {
      const hit = await cache.get(key as never);
      const layer = (hit?.result as { layer?: CachedLayer | null } | undefined)?.layer ?? undefined;
      if (hit && (!layer || (await store.hasBlob(layer.digest)))) {
        this.cachedSteps++;
        this.steps.push({ name, key, line: op.meta.range.start.line, status: 'cached', durationMs: 0 });
        emit({ type: 'step', id: key, name, status: 'cached' });
        return { layers: layer ? [...parent.layers, layer] : parent.layers, key };
      }
      twin().catch(() => {}); // started now; awaited below
      prev = await cache.previous(stepId).catch(() => undefined);
      if (hit) reason = 'cached layer is missing from the store';
      else if (prev?.manifest) reason = describeChanges(explain(prev.manifest, manifest, files instanceof FileSet ? files : undefined));
      else reason = 'first build of this step';
    } else reason = 'cache disabled';
    emit({ type: 'step', id: key, name, status: 'started', ...(reason ? { reason } : {}) });
    const t0 = Date.now();
    try {
      const prevLayer = (prev?.result as { layer?: CachedLayer | null } | undefined)?.layer ?? undefined;
      const layer = await this.#execute(op, parent, key, name, (await twin()) ?? prevLayer?.diffId);
      // Both records under one hold of the cache lock, written side by side.
      await cache.withLock(() =>
        Promise.all([
          cache.put({ key: key as never, result: { layer: layer ? { ...layer } : null } as never, size: layer?.size ?? 0, stepId, description: name, manifest, files: filesToKeep(manifest, files) }),
          sameContent && layer ? cache.put({ key: sameContent, result: { diffId: layer.diffId }, size: 0, description: `files of ${name}` }) : undefined,
        ]),
      );
      this.executedSteps++;
      const durationMs = Date.now() - t0;
      this.steps.push({ name, key, line: op.meta.range.start.line, status: 'executed', ...(reason ? { reason } : {}), durationMs });
      emit({ type: 'step', id: key, name, status: 'done', durationMs });
      return { layers: layer ? [...parent.layers, layer] : parent.layers, key };
    } catch (err) {
      const signal = this.#i.options.signal;
      if (signal?.aborted && signal.reason !== err) {
        // Stopped because another step failed (or the caller aborted): not this step's error.
        emit({ type: 'step', id: key, name, status: 'error', error: 'CANCELED' });
        throw signal.reason instanceof Error ? signal.reason : err;
      }
      emit({ type: 'step', id: key, name, status: 'error', error: (err as Error).message });
      if (err instanceof BuildError) throw err;
      throw new BuildError((err as { code?: string }).code ?? 'TSBUILD_STEP_FAILED', (err as Error).message, {
        file: this.#i.file,
        source: this.#i.source,
        cause: err,
        step: { name, range: op.meta.range, ...((err as { output?: string }).output ? { output: (err as { output?: string }).output! } : {}) },
      });
    }
  }

  /** The directory of a layer's snapshot, unpacked if missing; asked once per layer and build (a snapshot, once there, stays). */
  #snapshotDir(l: CachedLayer): Promise<string> {
    let p = this.#snapshotDirs.get(l.diffId);
    if (!p) {
      const { snapshots, store } = this.#i;
      p = snapshots().then((s) => s.ensure(l.diffId, () => store.openBlob(l.digest)));
      this.#snapshotDirs.set(l.diffId, p);
      p.catch(() => this.#snapshotDirs.delete(l.diffId));
    }
    return p;
  }

  async #lowerDirs(state: FsState): Promise<string[]> {
    this.#emptyDir ??= this.#i.snapshots().then((s) => s.empty());
    const dirs: string[] = [await this.#emptyDir];
    for (const l of state.layers) dirs.push(await this.#snapshotDir(l));
    // overlayfs refuses a lower dir given twice (ELOOP). Two identical steps give one layer twice;
    // the upper copy re-adds everything the lower one holds, so dropping the lower one is exact.
    return dirs.filter((d, i) => dirs.lastIndexOf(d) === i);
  }

  /**
   * A read-only view of `state` (the source of a COPY --from, a read-only RUN --mount from=): an
   * overlay of its layers without an upper dir, mounted at the first use and shared by every
   * step of this build that reads the same layers, until `close()`.
   */
  async #view(state: FsState): Promise<string> {
    const lower = await this.#lowerDirs(state);
    // Only the empty directory (a state without layers): it is its own view.
    if (lower.length < 2) return lower[0]!;
    const id = lower.join(':');
    let v = this.#views.get(id);
    if (!v) {
      if (this.#closed) throw new TsbuildError('TSBUILD_INTERNAL', 'a view was asked for after the build ended');
      v = this.#mountView(lower);
      this.#views.set(id, v);
    }
    return (await v).dir;
  }

  async #mountView(lower: readonly string[]): Promise<{ dir: string; close: () => Promise<void> }> {
    const { mountReadOnlyOverlay } = await import('./snapshots.js');
    return this.#mountedView('v', (_parent, dir) => mountReadOnlyOverlay(lower, dir));
  }

  /** A view mounted by `mount` at `<temp dir>/m`; closing it unmounts it and removes the temp dir. */
  async #mountedView(prefix: string, mount: (parent: string, dir: string) => Promise<() => Promise<void>>): Promise<{ dir: string; close: () => Promise<void> }> {
    const parent = (await this.#i.snapshots()).tempDirSync(prefix);
    const dir = path.join(parent, 'm');
    try {
      const unmount = await mount(parent, dir);
      return {
        dir,
        close: async () => {
          await unmount();
          await rm(parent, { recursive: true, force: true });
        },
      };
    } catch (err) {
      await rm(parent, { recursive: true, force: true });
      throw err;
    }
  }

  /**
   * Unmounts and removes the shared views, once every started step has stopped (call it after
   * the build, whether it succeeded or failed). Views asked for afterwards are refused.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.settled();
    const views = [...this.#views.values()];
    this.#views.clear();
    const errors: unknown[] = [];
    for (const r of await Promise.allSettled(views)) {
      if (r.status === 'fulfilled') await r.value.close().catch((err: unknown) => errors.push(err));
    }
    if (errors.length > 0) throw new TsbuildError('TSBUILD_MOUNT', `could not unmount ${errors.length} build view(s): ${(errors[0] as Error).message}`, { cause: errors[0] });
  }

  /** Runs one step. `reuse`: the diffID of a snapshot whose identical files a COPY may hard-link. */
  async #execute(op: StageOp, parent: FsState, key: string, name: string, reuse?: Digest): Promise<CachedLayer | undefined> {
    switch (op.type) {
      case 'tsbuild.file.copy.v1':
      case 'tsbuild.file.mkdir.v1':
        return this.#fileOp(op, parent, reuse);
      case 'tsbuild.exec.v1':
        return this.#exec(op, parent, key, name);
    }
    return undefined;
  }

  async #fileOp(op: CopyOp | MkdirOp, parent: FsState, reuse?: Digest): Promise<CachedLayer> {
    const { options } = this.#i;
    const [snapshots, { mountOverlay }, { applyCopy }] = await Promise.all([this.#i.snapshots(), import('./snapshots.js'), import('./copy.js')]);
    const lower = await this.#lowerDirs(parent);
    // Files identical to those of this snapshot (checked one by one) are hard-linked from it.
    const reuseFrom = reuse && (await snapshots.has(reuse)) ? snapshots.pathFor(reuse) : undefined;
    const { dir, upper, work, mnt } = snapshots.overlayDirs('f');
    let unmount: () => Promise<void>;
    try {
      unmount = await mountOverlay(lower, upper, work, mnt);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    let changed: readonly string[];
    let mkdirLayer: LayerResult | undefined;
    try {
      if (op.type === 'tsbuild.file.mkdir.v1') {
        // Made by the stage's USER, as BuildKit's mkdir runs WithUser: `USER app` then
        // `WORKDIR /home/app/src` gives directories app can write to.
        let owner: { uid: number; gid: number } | undefined;
        if (op.user !== '' && op.user !== 'root' && op.user !== '0' && op.user !== '0:0') {
          const { resolveChown, rootfsIdLookup } = await import('./copy.js');
          owner = await resolveChown(op.user, rootfsIdLookup(mnt));
        }
        changed = await mkdirInRoot(mnt, op.path, op.mode, owner);
      } else {
        const sourceState = await this.#sourceState(op.from);
        const copy = async (srcRoot: string, hidden?: (rel: string, intermediate: boolean) => boolean, preserve?: boolean) =>
          applyCopy(
            {
              kind: op.instruction,
              sources: [...op.sources.map((s): CopySource => (isUrl(s) ? { kind: 'url', url: s } : { kind: 'path', path: s })), ...op.inline.map((f): CopySource => ({ kind: 'inline', name: f.name, content: f.content }))],
              dest: op.dest,
              ...(op.chown ? { chown: op.chown } : {}),
              ...(op.chmod ? { chmod: 'mode' in op.chmod ? op.chmod.mode.toString(8) : op.chmod.symbolic } : {}),
              parents: op.parents,
              exclude: op.exclude,
              ...(op.unpack !== undefined ? { unpack: op.unpack } : {}),
              ...(op.checksum ? { checksum: op.checksum } : {}),
            },
            {
              source: { root: srcRoot, ...(hidden ? { isHidden: hidden } : {}), ...(preserve ? { preserveOwnership: true } : {}) },
              destRoot: mnt,
              ...(reuseFrom ? { reuse: { from: reuseFrom, upper } } : {}),
              ...(options.sourceDateEpoch !== undefined ? { createdTime: new Date(options.sourceDateEpoch * 1000) } : {}),
              ...(options.signal ? { signal: options.signal } : {}),
            },
          );
        if (sourceState) changed = (await copy(await this.#view(sourceState), undefined, true)).changed;
        else {
          const { ctx } = await this.#local(op.from);
          changed = (await copy(ctx.root, (rel, intermediate) => ctx.isHidden(rel, intermediate))).changed;
        }
      }
      // A COPY's layer is read from the upper dir once the copy is done: it holds every path the copy
      // wrote and (copied up by overlayfs) every parent of one, with the same metadata, and reads
      // there skip overlayfs' per-call cost. A WORKDIR's may list a directory that was already
      // there (only in a lower layer): read through the mount.
      if (op.type === 'tsbuild.file.mkdir.v1') mkdirLayer = await this.#writeLayer(mnt, changed);
    } catch (err) {
      // the step's error is the one to report; a dir still mounted is left to gc (never rm'd through a mount)
      if (await unmount().then(() => true, () => false)) await rm(dir, { recursive: true, force: true });
      throw err;
    }
    // The layer is read from the upper dir while the overlay is being unmounted (reading an
    // upper dir under a mount is allowed; the copy is done); it is renamed only once unmounted.
    const unmounting = unmount();
    unmounting.catch(() => {}); // awaited below; this only marks a failure as handled meanwhile
    let result: LayerResult;
    try {
      result = mkdirLayer ?? (await this.#writeLayer(upper, changed));
    } catch (err) {
      if (await unmounting.then(() => true, () => false)) await rm(dir, { recursive: true, force: true });
      throw err;
    }
    await unmounting;
    try {
      await snapshots.commit(upper, result.diffId);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    snapshots.removeSmall(dir); // the upper dir is committed: only the work and mount dirs are left
    return { diffId: result.diffId, digest: result.digest, size: result.size, mediaType: result.mediaType };
  }

  /** The uncompressed layer of `paths` under `root` (compressed once, when an output needs it: outputCompression). */
  async #writeLayer(root: string, paths: readonly string[]): Promise<LayerResult> {
    const { store, options } = this.#i;
    const { writeLayer } = await import('./layer.js');
    return writeLayer({
      root,
      paths,
      blobDir: store.blobsDir,
      compression: 'none',
      ...(options.sourceDateEpoch !== undefined ? { sourceDateEpoch: options.sourceDateEpoch } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }

  async #exec(op: ExecOp, parent: FsState, id: string, name: string): Promise<CachedLayer | undefined> {
    const { store, options, root } = this.#i;
    // BuildKit runs it privileged only when the build is given the security.insecure
    // entitlement, and refuses it otherwise; tsbuild has no privileged mode to grant.
    if (op.security === 'insecure') throw new TsbuildError('TSBUILD_UNSUPPORTED', 'RUN --security=insecure is not supported: tsbuild has no privileged mode (BuildKit, too, refuses it without --allow security.insecure)');
    const snapshots = await this.#i.snapshots();
    if (!this.#runtime) this.#runtime = import('../runtime/sandbox.js').then((m) => m.createRuntime({ stateDir: path.join(root, 'runtime') }));
    const runtime = await this.#runtime;
    const lower = await this.#lowerDirs(parent);
    const upper = await snapshots.tempDir('ex');
    const cleanups: (() => Promise<void>)[] = [];
    const cleanup = async () => {
      for (const c of cleanups.reverse()) await c();
    };
    const emit = this.#i.emit;
    let result: Awaited<ReturnType<typeof runtime.run>>;
    try {
      const mounts = await this.#execMounts(op, cleanups);
      result = await runtime.run({
        rootfs: { lowerDirs: lower },
        upperDir: upper,
        mounts,
        env: [...op.env, ...Object.entries(op.proxyEnv).map(([k, v]) => `${k}=${v}`)],
        user: op.user,
        cwd: op.cwd,
        args: op.args,
        network: runNetwork(op, options),
        // as BuildKit names its RUN sandboxes, unless the BUILDKIT_SANDBOX_HOSTNAME build arg says otherwise
        hostname: options.buildArgs?.BUILDKIT_SANDBOX_HOSTNAME || 'buildkitsandbox',
        ...(options.addHosts?.length ? { extraHosts: options.addHosts } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        onStdout: (b) => emit({ type: 'output', id, name, stream: 'stdout', data: b.toString() }),
        onStderr: (b) => emit({ type: 'output', id, name, stream: 'stderr', data: b.toString() }),
      });
    } catch (err) {
      await cleanup();
      await rm(upper, { recursive: true, force: true });
      throw err;
    }
    try {
      if (result.exitCode !== 0) {
        const err = new TsbuildError(
          'TSBUILD_RUN_FAILED',
          `process "${op.args.join(' ')}" did not complete successfully: exit code: ${result.exitCode}${result.signal ? ` (${result.signal})` : ''}`,
        );
        (err as unknown as { output: string }).output = result.lastOutput;
        throw err;
      }
      // Stored uncompressed (compressed when an output needs it): the blob's digest, computed
      // once as the store writes it, is the layer's diffID.
      const blob = await store.putBlob(result.diff());
      // The upper directory becomes the layer's snapshot, without the sandbox's mount points.
      // inside the upper dir, whose symlinks the command made: never followed out of it
      for (const mp of result.mountPoints) await removeIfPlaceholder((await resolveInRoot(upper, mp, { followFinal: false })).abs);
      await snapshots.commit(upper, blob.digest);
      return { diffId: blob.digest, digest: blob.digest, size: blob.size, mediaType: MediaType.OciLayer };
    } finally {
      await result.dispose();
      await cleanup();
      await rm(upper, { recursive: true, force: true });
    }
  }

  /** The runtime's mounts for a RUN; `cleanups` receives what to undo after the step. */
  async #execMounts(op: ExecOp, cleanups: (() => Promise<void>)[]): Promise<import('../runtime/spec.js').MountSpec[]> {
    const out: import('../runtime/spec.js').MountSpec[] = [];
    const { options } = this.#i;
    for (const m of op.mounts) {
      switch (m.type) {
        case 'tmpfs':
          out.push({ type: 'tmpfs', target: m.target, ...(m.size ? { size: m.size } : {}) });
          break;
        case 'cache': {
          // from=: the cache starts as that source's directory (`source=`, default its root), and
          // is one cache per id and source, as BuildKit keys it by id and base.
          let seed: { dir: string; key: string } | undefined;
          if (m.from) {
            const source = m.source ?? '/';
            const { path: dir, state: s } = await this.#mountSource(m.from, source, 'cache');
            if (!lstatSyncOrUndefined(dir)?.isDirectory()) throw new TsbuildError('TSBUILD_MOUNT_SOURCE', `cache mount source ${source} in ${describeSource(m.from)} is not a directory`);
            const from = s ? s.key : `files:${(await this.#contextFiles([source], [], m.from)).digest}`;
            seed = { dir, key: `${from}:${source}` };
          }
          out.push({ type: 'cache', target: m.target, id: seed ? `${m.id}\u0000${seed.key}` : m.id, sharing: m.sharing, mode: m.mode, uid: m.uid, gid: m.gid, readonly: m.readonly, ...(seed ? { seed: seed.dir } : {}) });
          break;
        }
        case 'secret': {
          const spec = options.secrets?.find((s) => s.id === m.id);
          let data: Uint8Array | undefined;
          if (spec?.src) data = await readFile(spec.src);
          else if (spec?.env !== undefined && options.env?.[spec.env] !== undefined) data = Buffer.from(options.env[spec.env]!);
          if (!data && m.required) throw new TsbuildError('TSBUILD_SECRET_MISSING', `secret ${m.id} is required but was not given (--secret id=${m.id},src=PATH)`);
          out.push({ type: 'secret', id: m.id, data, ...(m.target ? { target: m.target } : {}), ...(m.env ? { env: m.env } : {}), required: m.required, mode: m.mode, uid: m.uid, gid: m.gid });
          break;
        }
        case 'ssh': {
          const spec = options.ssh?.find((s) => s.id === m.id);
          if (!spec?.paths[0] && m.required) throw new TsbuildError('TSBUILD_SSH_MISSING', `ssh agent ${m.id} is required but was not given (--ssh ${m.id})`);
          let socket = spec?.paths[0];
          if (socket !== undefined) {
            // the step sees a socket of the mount's owner and mode, forwarding to the agent
            const { agentProxy } = await import('./ssh-proxy.js');
            const proxy = await agentProxy(socket, { uid: m.uid, gid: m.gid, mode: m.mode });
            cleanups.push(() => proxy.close());
            socket = proxy.socket;
          }
          out.push({ type: 'ssh', socket, id: m.id, target: m.target, required: m.required });
          break;
        }
        case 'bind':
          // A read-only view shared by the build; a writable bind gets an overlay of its own
          // over it from the runtime, whose upper dir is dropped after the step.
          out.push({ type: 'bind', source: (await this.#mountSource(m.from, m.source, 'bind')).path, target: m.target, readwrite: !m.readonly });
          break;
        case 'inline': {
          // A heredoc run as a script (`RUN <<EOF` starting with `#!`): its file, read-only at
          // /dev/pipes as BuildKit mounts it.
          const { mkdtemp, chmod } = await import('node:fs/promises');
          const { tmpdir } = await import('node:os');
          const dir = await mkdtemp(path.join(tmpdir(), 'tsbuild-inline-'));
          cleanups.push(() => rm(dir, { recursive: true, force: true }));
          for (const f of m.files) {
            const file = path.join(dir, path.posix.basename('/' + f.name));
            await writeFile(file, f.content, { mode: f.mode });
            await chmod(file, f.mode);
          }
          out.push({ type: 'bind', source: dir, target: m.target, readwrite: false });
          break;
        }
      }
    }
    return out;
  }

  /**
   * What the files a step reads from the context are (type, mode, content digest). Steps that
   * read the same sources (`COPY data/ /data/` in two stages) share one hashing: the context is
   * looked at once per build.
   */
  #contextFiles(sources: readonly string[], exclude: readonly string[], from: FileSource = { kind: 'context' }): Promise<FileSet> {
    const name = from.kind === 'named-context' ? from.name : '';
    const k = JSON.stringify([name, sources, exclude]);
    let p = this.#contextSets.get(k);
    if (!p) {
      p = this.#local(from).then(({ ctx, hasher }) => {
        let hashRoot = this.#hashRoots.get(name);
        // Without ignore patterns nothing is hidden: skip the per-file check.
        if (!hashRoot) this.#hashRoots.set(name, (hashRoot = { root: ctx.root, ...(ctx.ignore.empty ? {} : { isHidden: (rel: string, isDir: boolean) => ctx.isHidden(rel, isDir) }) }));
        return hasher.fileSet(hashRoot, sources, { exclude, ...(this.#i.options.signal ? { signal: this.#i.options.signal } : {}) });
      });
      this.#contextSets.set(k, p);
    }
    return p;
  }
}

/** How an error names where a step reads from. */
function describeSource(src: FileSource): string {
  switch (src.kind) {
    case 'context':
      return 'the build context';
    case 'stage':
      return `stage ${src.stage}`;
    case 'image':
      return `image ${src.ref}`;
    case 'named-context':
      return `context ${src.name}`;
  }
}

/** A base image (or an image as a source) as a state: its layers, keyed by its manifest. */
function imageState(img: ResolvedImage): FsState {
  return { layers: img.layers, key: `image:${img.manifestDigest}` };
}

function lstatSyncOrUndefined(p: string): import('node:fs').Stats | undefined {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}

/**
 * The paths below `rel` (a directory of the context) that its ignore rules hide, relative to
 * `rel`: a hidden directory stands for everything in it; a directory an exception may reach
 * into is looked into. Symbolic links are not followed.
 */
async function hiddenBelow(ctx: BuildContext, rel: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (sub: string) => {
    const entries = await readdir(path.join(ctx.root, rel, sub), { withFileTypes: true });
    for (const e of entries) {
      const inSource = sub === '' ? e.name : `${sub}/${e.name}`;
      const inContext = rel === '' ? inSource : `${rel}/${inSource}`;
      const isDir = e.isDirectory();
      if (ctx.isHidden(inContext, isDir)) out.push(inSource);
      else if (isDir) await walk(inSource);
    }
  };
  await walk('');
  return out;
}

/**
 * The step that makes a named directory context a stage's base: `COPY . /` from it onto scratch
 * (owners root, modes kept), shown as `[context NAME] load DIR`.
 */
function namedContextRootOp(stage: BuildGraph['stages'][number], base: { readonly name: string; readonly op: string }, dir: string): CopyOp {
  return {
    type: 'tsbuild.file.copy.v1',
    id: `${base.op}/root`,
    inputs: {},
    meta: { stage: stage.index, stageName: stage.displayName, step: 0, steps: 0, range: stage.range, name: `[context ${base.name}] load ${dir}` },
    instruction: 'COPY',
    from: { kind: 'named-context', name: base.name, op: base.op },
    sources: ['.'],
    inline: [],
    dest: '/',
    link: false,
    parents: false,
    exclude: [],
    user: '',
  };
}

function isUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}

function isGitSource(s: string): boolean {
  return /^(git@[^:]+:|git:\/\/|ssh:\/\/)/.test(s) || /^https?:\/\/[^#]+\.git\/?(#.*)?$/i.test(s);
}

/** What a COPY reads from its source tree (its sources that are not URLs). */
function contextPaths(op: CopyOp): string[] {
  return op.sources.filter((x) => !isUrl(x));
}

/** The network a RUN step runs with: its own `--network`, else the build's. */
function runNetwork(op: ExecOp, options: BuildOptions): ExecOp['network'] {
  return options.network && op.network === 'default' ? options.network : op.network;
}

/** What identifies the current version of a remote file, from a HEAD request; unique (never cached) when the server says nothing useful. */
async function remoteVersion(url: string, signal?: AbortSignal): Promise<string> {
  try {
    const res = await httpFetch('HEAD', new URL(url), signal);
    discard(res.body);
    const etag = header(res.headers, 'etag');
    const modified = header(res.headers, 'last-modified');
    if (res.status >= 200 && res.status <= 299 && (etag || modified)) return `${res.url.href} ${etag ?? ''} ${modified ?? ''} ${header(res.headers, 'content-length') ?? ''}`;
  } catch {
    // The step itself reports the download error.
  }
  return `uncacheable ${Date.now()} ${Math.random()}`;
}

async function removeIfPlaceholder(p: string): Promise<void> {
  try {
    const st = await lstat(p);
    if (st.isDirectory() && (await readdir(p)).length === 0) await rmdir(p);
    else if (st.isFile() && st.size === 0) await unlink(p);
  } catch {
    /* not there */
  }
}

/** `mkdir -p` inside a root, never following a symlink out of it. Returns created/ensured paths relative to root. */
async function mkdirInRoot(root: string, dir: string, mode: number, owner?: { uid: number; gid: number }): Promise<string[]> {
  const r = await resolveInRoot(root, dir);
  const first = await mkdir(r.abs, { recursive: true, mode });
  if (owner && first !== undefined) {
    // every directory this made, from the target up to the first one made (those there already keep their owner)
    for (let d = r.abs; ; d = path.dirname(d)) {
      await lchown(d, owner.uid, owner.gid);
      if (d === first || d.length <= root.length) break;
    }
  }
  const rel = path.relative(root, r.abs);
  return rel ? [rel.split(path.sep).join('/')] : [];
}
