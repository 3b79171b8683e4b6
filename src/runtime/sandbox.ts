import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { acquireCache, type CacheLease } from './cache.js';
import { copyLayers, type TreeSnapshot } from './copy.js';
import { diffTrees, diffUpperDir, type DiffOptions } from './diff.js';
import { MountError, SandboxAbortedError, SandboxSetupError, SandboxTimeoutError } from './errors.js';
import { DEFAULT_HELPER_PATH, ensureHelper } from './helper.js';
import { encodeSpec, parseStatusLine, type HelperRecord, type HelperStatus } from './protocol.js';
import { checkExtraHost, type MountSpec, type RunSpec } from './spec.js';
import { resolveUser, type ResolvedUser } from './user.js';

export interface RuntimeOptions {
  /** The runtime's state root: run directories (`runs/`), overlay work dirs (`work/`), disposed runs being deleted (`trash/`) and cache mounts (`cache/`) live here. */
  readonly stateDir: string;
  /** The C helper; default the one built at install (`native/build/tsbuild-sandbox`). */
  readonly helperPath?: string;
  /**
   * Run in a user namespace with the identity map when we are root (default true): root in the
   * step owns files as root but holds capabilities only over the step's own namespaces.
   */
  readonly userNamespace?: boolean;
}

export interface RunResult {
  /** The command's exit code; 128 + n when it was killed by signal n. */
  readonly exitCode: number;
  /** Set when the command was killed by a signal (e.g. `SIGSEGV`). */
  readonly signal?: string;
  readonly durationMs: number;
  /** How the root was made: overlayfs over the layers, a private copy of them, or a plain directory. */
  readonly rootfsMode: 'overlay' | 'copy' | 'dir';
  /** The overlay upper directory (overlay mode), or the private root copy (copy mode). */
  readonly changesDir?: string;
  /** Paths (absolute, inside the root) the sandbox mounted over; they are left out of the diff unless written otherwise. */
  readonly mountPoints: readonly string[];
  /** The last few KiB of stdout and stderr, interleaved as received: for error messages. */
  readonly lastOutput: string;
  /** The changes as a deterministic layer tar (whiteouts, opaque markers). Not for a `dir` root. */
  diff(options?: DiffOptions): Readable;
  /**
   * Removes the run's directories (the upper or copy, unless the caller gave `upperDir`): when
   * it resolves they are gone from `runs/`; the files themselves are deleted in the background
   * (from `trash/` under the state root).
   */
  dispose(): Promise<void>;
}

/** How long a helper started ahead of time waits for a run before it is killed. */
const SPARE_IDLE_MS = 5000;

function helperStreams(c: ChildProcess): Socket[] {
  return [c.stdout, c.stderr, c.stdio[3]].filter((x) => x != null) as unknown as Socket[];
}

/** The value of `key` in a `KEY=value` list as the process sees it (the last entry wins); '' when absent. */
function envValue(env: readonly string[], key: string): string {
  for (let i = env.length - 1; i >= 0; i--) {
    const e = env[i]!;
    if (e.startsWith(`${key}=`)) return e.slice(key.length + 1);
  }
  return '';
}

/** Mount points the sandbox always makes. */
const SYSTEM_MOUNTS = ['/proc', '/dev', '/sys', '/etc/resolv.conf', '/etc/hosts'];
const LAST_OUTPUT_BYTES = 8192;
const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE', 9: 'SIGKILL', 11: 'SIGSEGV', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM' };

/** A sandbox runtime bound to one state root. */
export class Runtime {
  readonly stateDir: string;
  readonly helperPath: string;
  readonly userNamespace: boolean;
  private overlayBroken = false;
  private hostFiles: Promise<{ resolv: Buffer }> | undefined;

  constructor(options: RuntimeOptions) {
    this.stateDir = options.stateDir;
    this.helperPath = options.helperPath ?? DEFAULT_HELPER_PATH;
    this.userNamespace = options.userNamespace ?? true;
  }

  /**
   * Runs one process. Resolves with its exit code (non-zero is not an error here: the caller
   * names the step); rejects with SandboxSetupError, SandboxAbortedError, SandboxTimeoutError,
   * MountError, UserResolutionError or RuntimeUnavailableError; with a `TsbuildError`
   * (`TSBUILD_INVALID_HOST`) for a bad `extraHosts` entry.
   */
  async run(spec: RunSpec): Promise<RunResult> {
    await ensureHelper(this.helperPath);
    spec.signal?.throwIfAborted();
    // Checked before anything is made: each entry becomes one /etc/hosts line.
    if (spec.extraHosts?.length) spec = { ...spec, extraHosts: spec.extraHosts.map(checkExtraHost) };
    const mode = spec.rootfsMode ?? 'auto';
    if ('dir' in spec.rootfs) return this.runOnce(spec, 'dir');
    if (mode === 'copy' || (mode === 'auto' && (this.overlayBroken || !(await overlaySupported())))) return this.runOnce(spec, 'copy');
    try {
      return await this.runOnce(spec, 'overlay');
    } catch (err) {
      if (mode === 'auto' && err instanceof SandboxSetupError && /overlay/.test(err.message)) {
        this.overlayBroken = true;
        return this.runOnce(spec, 'copy');
      }
      throw err;
    }
  }

  private async runOnce(spec: RunSpec, rootfsMode: 'overlay' | 'copy' | 'dir'): Promise<RunResult> {
    const id = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
    // The run dir is the overlay upper (when the caller gives none; the helper makes it then),
    // or holds the copy and the scratch dirs of writable binds (made here when needed).
    const runDir = join(await this.runsDir(), id);
    let runDirMade: Promise<unknown> | undefined;
    const makeRunDir = () => (runDirMade ??= mkdir(runDir, { recursive: true }));
    const cleanups: (() => Promise<unknown>)[] = [];
    const leases: CacheLease[] = [];
    let keepRunDir = false;
    let work: string | undefined;
    try {
      const records: HelperRecord[] = [];
      let layersTopFirst: string[];
      let snapshot: TreeSnapshot | undefined;
      let copyDir: string | undefined;
      let upper: string | undefined;
      const lowerDirs = 'lowerDirs' in spec.rootfs ? spec.rootfs.lowerDirs : [];
      if ('dir' in spec.rootfs) {
        records.push({ kind: 'dir', path: spec.rootfs.dir });
        layersTopFirst = [spec.rootfs.dir];
      } else if (rootfsMode === 'copy') {
        copyDir = join(runDir, 'rootfs');
        await makeRunDir();
        snapshot = await copyLayers(this.helperPath, lowerDirs, copyDir);
        records.push({ kind: 'dir', path: copyDir });
        layersTopFirst = [copyDir];
      } else {
        if (lowerDirs.length === 0) throw new SandboxSetupError('the root filesystem has no layers');
        if (spec.upperDir !== undefined) {
          upper = spec.upperDir;
          await mkdir(upper, { recursive: true });
        } else upper = runDir;
        // The work dir must share the upper's filesystem; the helper makes and removes it.
        work = spec.upperDir !== undefined ? join(dirname(upper), `.${basename(upper)}.work-${id}`) : join(await this.worksDir(), id);
        records.push({ kind: 'overlay', merged: await this.mountPoint(), upper, work, lowerDirs });
        layersTopFirst = [...lowerDirs].reverse();
      }

      const user = await this.user(layersTopFirst, spec.user, !('dir' in spec.rootfs) && rootfsMode === 'overlay');
      const cwd = posix.resolve('/', spec.cwd ?? '/');
      records.push({ kind: 'hostname', value: spec.hostname ?? 'tsbuild' });
      records.push({ kind: 'net', value: spec.network === 'none' ? 'none' : 'host' });
      records.push({ kind: 'cwd', value: cwd });
      records.push({ kind: 'userns', value: this.userNamespace });
      records.push({ kind: 'uid', value: user.uid }, { kind: 'gid', value: user.gid });
      for (const g of user.groups) records.push({ kind: 'group', value: g });

      const env = [...(spec.env ?? [])];
      const hostname = spec.hostname ?? 'tsbuild';
      const { resolv } = await (this.hostFiles ??= readHostFiles());
      records.push({ kind: 'file', target: '/etc/resolv.conf', mode: 0o644, uid: 0, gid: 0, readonly: false, data: resolv });
      let hosts = `127.0.0.1\tlocalhost ${hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n`;
      for (const { host, ip } of spec.extraHosts ?? []) hosts += `${ip}\t${host}\n`;
      records.push({ kind: 'file', target: '/etc/hosts', mode: 0o644, uid: 0, gid: 0, readonly: false, data: Buffer.from(hosts) });

      const mountPoints = [...SYSTEM_MOUNTS];
      const mounts = [...(spec.mounts ?? [])]
        .map((m, i) => ({ m, i, target: mountTarget(m, cwd) }))
        .sort((a, b) => depth(a.target ?? '') - depth(b.target ?? '') || a.i - b.i);
      for (const { m, i, target } of mounts) {
        if (target === undefined) {
          if (m.type === 'secret' && m.env) {
            if (m.data === undefined) {
              if (m.required) throw new MountError(`secret ${m.id} is required but was not provided`);
              continue;
            }
            env.push(`${m.env}=${Buffer.from(m.data).toString('utf8')}`);
          }
          continue;
        }
        if (target === '/') throw new MountError(`cannot mount ${m.type} over /`);
        switch (m.type) {
          case 'bind':
            if (m.readwrite && m.writeThrough) records.push({ kind: 'bind', source: m.source, target, readonly: false });
            else if (m.readwrite) {
              const b = join(runDir, `bind-${i}`);
              await makeRunDir();
              await mkdir(join(b, 'upper'), { recursive: true });
              await mkdir(join(b, 'work'));
              cleanups.push(() => rm(b, { recursive: true, force: true }));
              records.push({ kind: 'ovbind', source: m.source, upper: join(b, 'upper'), work: join(b, 'work'), target });
            } else records.push({ kind: 'bind', source: m.source, target, readonly: true });
            break;
          case 'cache': {
            const lease = await acquireCache(this.stateDir, m, spec.signal);
            leases.push(lease);
            records.push({ kind: 'bind', source: lease.dir, target, readonly: m.readonly ?? false });
            break;
          }
          case 'tmpfs':
            records.push({ kind: 'tmpfs', target, size: m.size ?? 0, mode: m.mode ?? 0o1777 });
            break;
          case 'secret':
            if (m.data === undefined) {
              if (m.required) throw new MountError(`secret ${m.id} is required but was not provided`);
              continue;
            }
            records.push({ kind: 'file', target, mode: m.mode ?? 0o400, uid: m.uid ?? 0, gid: m.gid ?? 0, readonly: true, data: m.data });
            if (m.env) env.push(`${m.env}=${Buffer.from(m.data).toString('utf8')}`);
            break;
          case 'ssh':
            if (m.socket === undefined) {
              if (m.required) throw new MountError(`ssh agent ${m.id ?? 'default'} is required but no socket was given`);
              continue;
            }
            records.push({ kind: 'bind', source: m.socket, target, readonly: false });
            if (!env.some((e) => e.startsWith('SSH_AUTH_SOCK='))) env.push(`SSH_AUTH_SOCK=${target}`);
            break;
        }
        mountPoints.push(target);
      }
      // runc's rule: when the environment has no HOME (or an empty one, the last entry winning),
      // HOME is the user's home from the root's /etc/passwd, "/" for a user not in it.
      if (envValue(env, 'HOME') === '') {
        const rest = env.filter((e) => !e.startsWith('HOME='));
        env.splice(0, env.length, ...rest, `HOME=${user.home ?? '/'}`);
      }
      for (const e of env) records.push({ kind: 'env', value: e });
      for (const a of spec.args) records.push({ kind: 'arg', value: a });
      if (spec.args.length === 0) throw new SandboxSetupError('no command to run');

      const outcome = await this.spawnHelper(encodeSpec(records), spec);
      keepRunDir = rootfsMode !== 'dir';
      const changesDir = rootfsMode === 'overlay' ? upper : copyDir;
      const points = [...new Set(mountPoints)];
      const helperPath = this.helperPath;
      const trashDir = () => this.trashDir();
      const upperDir = upper;
      let disposed = false;
      return {
        exitCode: outcome.exitCode,
        ...(outcome.signal ? { signal: outcome.signal } : {}),
        durationMs: outcome.durationMs,
        rootfsMode,
        ...(changesDir ? { changesDir } : {}),
        mountPoints: points,
        lastOutput: outcome.lastOutput,
        diff(options?: DiffOptions): Readable {
          const opts = { ...options, excludeMountPoints: [...points, ...(options?.excludeMountPoints ?? [])], helperPath };
          if (rootfsMode === 'overlay') return diffUpperDir(upperDir!, lowerDirs, opts);
          if (rootfsMode === 'copy') return diffTrees(copyDir!, snapshot!, opts);
          throw new SandboxSetupError('a run over a plain directory has no diff');
        },
        async dispose() {
          if (disposed) return;
          disposed = true;
          await removeSoon(runDir, await trashDir().catch(() => undefined));
          // The helper removes the work dir as it exits; only check after it (a crash) without waiting.
          const w = work;
          if (w) void outcome.helperDone.then(() => rm(w, { recursive: true, force: true })).catch(() => {});
        },
      };
    } finally {
      for (const c of cleanups) await c().catch(() => {});
      for (const l of leases) await l.release().catch(() => {});
      if (!keepRunDir) {
        await rm(runDir, { recursive: true, force: true }).catch(() => {});
        if (work) await rm(work, { recursive: true, force: true }).catch(() => {});
      }
    }
  }

  private runs: Promise<string> | undefined;
  private mnt: Promise<string> | undefined;
  private users = new Map<string, Promise<ResolvedUser>>();
  /**
   * A helper started ahead of time, blocked reading its spec: spawning from Node costs a few
   * milliseconds (fork of a large process, exec), so each run starts the next run's helper
   * while its own is busy. Unreferenced, and killed after SPARE_IDLE_MS unused.
   */
  private spare: { child: ChildProcess; idle: NodeJS.Timeout } | undefined;

  private startHelper(stdin?: RunSpec['stdin']): ChildProcess {
    return spawn(this.helperPath, ['run'], { stdio: [stdin === undefined ? 'ignore' : typeof stdin === 'number' ? stdin : 'pipe', 'pipe', 'pipe', 'pipe'] });
  }

  /** The spare helper if it is still waiting, else a fresh one. */
  private takeHelper(): ChildProcess {
    const s = this.spare;
    this.spare = undefined;
    if (s) {
      clearTimeout(s.idle);
      const c = s.child;
      if (c.pid !== undefined && c.exitCode === null && c.signalCode === null && !c.killed) {
        c.ref();
        for (const io of helperStreams(c)) io.ref();
        return c;
      }
    }
    return this.startHelper();
  }

  private prepareSpare(): void {
    if (this.spare) return;
    let child: ChildProcess;
    try {
      child = this.startHelper();
    } catch {
      return;
    }
    child.on('error', () => {}); // a spare that cannot start is simply not used (exitCode is then set)
    child.unref();
    for (const io of helperStreams(child)) io.unref();
    const idle = setTimeout(() => {
      if (this.spare?.child !== child) return;
      this.spare = undefined;
      child.kill('SIGKILL');
    }, SPARE_IDLE_MS);
    idle.unref();
    this.spare = { child, idle };
  }

  private runsDir(): Promise<string> {
    const dir = join(this.stateDir, 'runs');
    return (this.runs ??= mkdir(dir, { recursive: true }).then(() => dir));
  }

  private works: Promise<string> | undefined;
  /** Overlay work dirs of runs with the default upper (made and removed by the helper). */
  private worksDir(): Promise<string> {
    const dir = join(this.stateDir, 'work');
    return (this.works ??= mkdir(dir, { recursive: true }).then(() => dir));
  }

  private trash: Promise<string> | undefined;
  /** Where disposed run dirs go to be removed in the background; leftovers (a killed process) are swept on first use. */
  private trashDir(): Promise<string> {
    const dir = join(this.stateDir, 'trash');
    const made = (this.trash ??= mkdir(dir, { recursive: true }).then(() => {
      // Entries only, never the directory: other processes on the same root rename into it.
      void readdir(dir)
        .then((names) => Promise.all(names.map((n) => rm(join(dir, n), { recursive: true, force: true }))))
        .catch(() => {});
      return dir;
    }));
    made.catch(() => {
      if (this.trash === made) this.trash = undefined;
    });
    return made;
  }

  /** One empty directory serves as every run's overlay mount point: each mounts it in its own namespace. */
  private mountPoint(): Promise<string> {
    const dir = join(this.stateDir, 'mnt');
    return (this.mnt ??= mkdir(dir, { recursive: true }).then(() => dir));
  }

  /** USER resolution, memoized for immutable layer stacks. */
  private user(layersTopFirst: string[], user: string | undefined, immutable: boolean): Promise<ResolvedUser> {
    if (!immutable) return resolveUser(layersTopFirst, user);
    const key = JSON.stringify([layersTopFirst, user ?? '']);
    let p = this.users.get(key);
    if (!p) {
      if (this.users.size >= 256) this.users.clear();
      p = resolveUser(layersTopFirst, user);
      this.users.set(key, p);
      p.catch(() => this.users.delete(key));
    }
    return p;
  }

  private spawnHelper(wire: Buffer, spec: RunSpec): Promise<HelperOutcome> {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      // A spare helper made its mount namespace when it started: a bind mount's source that was
      // mounted after that (the builder's read-only view of another stage) is not in it. Runs
      // with bind mounts start a helper of their own.
      // A run with input has a helper of its own too (a spare's stdin is /dev/null).
      const stdin = spec.stdin;
      const child = stdin !== undefined || spec.mounts?.some((m) => m.type === 'bind') ? this.startHelper(stdin) : this.takeHelper();
      if (stdin !== undefined && typeof stdin !== 'number' && child.stdin) {
        const input = child.stdin;
        input.on('error', () => {}); // EPIPE: the process stopped reading; its exit is what counts
        stdin.pipe(input);
        child.once('close', () => stdin.unpipe(input));
      }
      const helperDone = new Promise<void>((r) => child.once('close', () => r()));
      const status = child.stdio[3] as Readable & { end(b: Buffer): void };
      let tail = '';
      const keep = (b: Buffer) => {
        tail += b.toString('utf8');
        if (tail.length > LAST_OUTPUT_BYTES * 2) tail = tail.slice(-LAST_OUTPUT_BYTES);
      };
      child.stdout!.on('data', (b: Buffer) => { keep(b); spec.onStdout?.(b); });
      child.stderr!.on('data', (b: Buffer) => { keep(b); spec.onStderr?.(b); });
      let statusText = '';
      status.on('data', (b: Buffer) => { statusText += b.toString('utf8'); });
      status.on('error', () => {});
      let killedBy: 'abort' | 'timeout' | undefined;
      let hardKill: NodeJS.Timeout | undefined;
      const kill = (why: 'abort' | 'timeout') => {
        if (killedBy) return;
        killedBy = why;
        child.kill('SIGTERM'); // the helper SIGKILLs the namespace's init: everything in it dies
        hardKill = setTimeout(() => child.kill('SIGKILL'), 2000);
        hardKill.unref();
      };
      const onAbort = () => kill('abort');
      spec.signal?.addEventListener('abort', onAbort, { once: true });
      const timer = spec.timeoutMs !== undefined ? setTimeout(() => kill('timeout'), spec.timeoutMs) : undefined;
      child.on('error', (err) => reject(new SandboxSetupError(`cannot start the sandbox helper ${this.helperPath}`, { cause: err })));
      // The run is over when a final status has arrived and stdout and stderr have ended (the
      // helper holds neither, so they end with the sandbox's last process): no waiting for the
      // namespace teardown or for the helper removing the overlay work dir. Without a final
      // status (a crash, a kill) we wait for the helper's exit to say why.
      let exited = false;
      let exitInfo: number | string | null = null;
      let open = 2;
      let settled = false;
      const onEnd = () => {
        if (--open === 0) maybeFinish();
      };
      for (const s of [child.stdout!, child.stderr!]) s.once('end', onEnd);
      status.on('data', () => maybeFinish());
      child.once('exit', (code, sig) => {
        exited = true;
        exitInfo = code ?? sig;
      });
      child.once('close', (code, sig) => {
        exited = true;
        exitInfo = code ?? sig;
        open = 0;
        maybeFinish();
      });
      const maybeFinish = () => {
        if (settled || open > 0) return;
        const final = /^[EXSK] [^\n]*\n/m.test(statusText);
        if (!exited && (killedBy || !final)) return; // wait for 'close'
        settled = true;
        finish(exitInfo);
      };
      const finish = (code: number | string | null) => {
        if (timer) clearTimeout(timer);
        if (hardKill) clearTimeout(hardKill);
        spec.signal?.removeEventListener('abort', onAbort);
        const durationMs = performance.now() - started;
        const lines = statusText.split('\n').filter(Boolean).map(parseStatusLine).filter((s): s is HelperStatus => s !== undefined);
        const lastOutput = tail.slice(-LAST_OUTPUT_BYTES);
        if (killedBy === 'abort') return reject(new SandboxAbortedError('the run was aborted; its processes were killed', { cause: spec.signal?.reason }));
        if (killedBy === 'timeout') return reject(new SandboxTimeoutError(spec.timeoutMs!));
        const error = lines.find((l) => l.kind === 'error');
        if (error && error.kind === 'error') return reject(new SandboxSetupError(`sandbox setup failed: ${error.message}`));
        const exit = lines.find((l) => l.kind === 'exit' || l.kind === 'signal');
        if (exit?.kind === 'exit') return resolve({ exitCode: exit.code, durationMs, lastOutput, helperDone });
        if (exit?.kind === 'signal') {
          return resolve({ exitCode: 128 + exit.signal, signal: SIGNALS[exit.signal] ?? `signal ${exit.signal}`, durationMs, lastOutput, helperDone });
        }
        const killed = lines.find((l) => l.kind === 'killed');
        if (killed?.kind === 'killed') return reject(new SandboxSetupError(`the sandbox's init was killed by ${SIGNALS[killed.signal] ?? `signal ${killed.signal}`}`));
        reject(new SandboxSetupError(`the sandbox helper ended without a status (exit ${code})`));
      };
      status.end(wire);
      this.prepareSpare();
    });
  }
}

interface HelperOutcome {
  readonly exitCode: number;
  readonly signal?: string;
  readonly durationMs: number;
  readonly lastOutput: string;
  /** Resolves when the helper process has exited (it may still be removing the work dir when the outcome is known). */
  readonly helperDone: Promise<void>;
}

/**
 * Removes `dir`: renamed into `trash` at once (one rename instead of an unlink per entry on the
 * caller's path), then deleted in the background. Falls back to removing it in place.
 */
async function removeSoon(dir: string, trash: string | undefined): Promise<void> {
  const dest = trash === undefined ? undefined : join(trash, `${basename(dir)}-${randomBytes(4).toString('hex')}`);
  try {
    if (dest === undefined) throw new Error('no trash directory');
    await rename(dir, dest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // never made (a plain-directory root)
    await rm(dir, { recursive: true, force: true });
    return;
  }
  void rm(dest, { recursive: true, force: true }).catch(() => {});
}

/** Creates a runtime over a state root. */
export function createRuntime(options: RuntimeOptions): Runtime {
  return new Runtime(options);
}

function depth(p: string): number {
  return p.split('/').filter(Boolean).length;
}

function mountTarget(m: MountSpec, cwd: string): string | undefined {
  let t: string | undefined;
  switch (m.type) {
    case 'secret': t = m.target ?? (m.env ? undefined : `/run/secrets/${m.id}`); break;
    case 'ssh': t = m.target ?? '/run/buildkit/ssh_agent.0'; break;
    default: t = m.target;
  }
  return t === undefined ? undefined : posix.resolve(cwd, t);
}

let overlayProbe: Promise<boolean> | undefined;
function overlaySupported(): Promise<boolean> {
  return (overlayProbe ??= readFile('/proc/filesystems', 'utf8').then((t) => /\boverlay\b/.test(t), () => false));
}

async function readHostFiles(): Promise<{ resolv: Buffer }> {
  const resolv = await readFile('/etc/resolv.conf').catch(() => Buffer.from('nameserver 8.8.8.8\nnameserver 8.8.4.4\n'));
  return { resolv };
}
