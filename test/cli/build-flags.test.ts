/**
 * `tsbuild build` flags read as buildx reads them: --output attributes are honoured or refused
 * (never dropped), --secret type=env|file, and SOURCE_DATE_EPOCH from the environment as a build arg.
 */
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxImage } from '../helpers/base-images.js';
import { runCli } from '../helpers/cli.js';
import { parseOutput } from '../../src/cli/commands/build.js';

let tmp: string;
let root: string;

/** A build in `tmp` with `env` (SOURCE_DATE_EPOCH unset unless given). */
const cli = (args: string[], env: Record<string, string | undefined> = {}) =>
  runCli(['build', '--root', root, '--progress', 'plain', ...args], { cwd: tmp, env: { SOURCE_DATE_EPOCH: undefined, ...env } });

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'tsbuild-cli-build-flags-'));
  root = path.join(tmp, 'root');
  await makeBusyboxImage(root);
  await mkdir(path.join(tmp, 'sde'));
  await writeFile(path.join(tmp, 'sde', 'Dockerfile'), 'FROM busybox:latest\nARG SOURCE_DATE_EPOCH\nRUN echo "epoch=$SOURCE_DATE_EPOCH" > /sde\n');
  await mkdir(path.join(tmp, 'secret'));
  await writeFile(path.join(tmp, 'secret', 'Dockerfile'), 'FROM busybox:latest\nRUN --mount=type=secret,id=tok,required=true cat /run/secrets/tok > /tok\n');
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('--output attributes: honoured or refused, never dropped', () => {
  it('refuses buildx attributes tsbuild does not honour, naming the attribute and the output type', () => {
    const refused: Array<[string, RegExp]> = [
      ['type=oci,dest=x.tar,annotation.org.opencontainers.image.title=x', /--output type=oci: attribute "annotation\.org\.opencontainers\.image\.title" is not supported/],
      ['type=oci,dest=x.tar,oci-mediatypes=false', /--output type=oci: attribute "oci-mediatypes=false" is not supported/],
      ['type=image,name=a:1,force-compression=true', /--output type=image: attribute "force-compression=true" is not supported/],
      ['type=image,name=a:1,unpack=true', /--output type=image: attribute "unpack" is not supported/],
      ['type=image,name=a:1,store=false', /--output type=image: attribute "store=false" is not supported/],
      ['type=registry,name=r/a:1,push-by-digest=true', /--output type=registry: attribute "push-by-digest" is not supported/],
      ['type=image,name=a:1,name-canonical=true', /attribute "name-canonical" is not supported/],
      ['type=image,dangling-name-prefix=x', /attribute "dangling-name-prefix" is not supported/],
      ['type=docker,dest=x.tar,oci-mediatypes=true', /--output type=docker: attribute "oci-mediatypes" is not supported/],
      // attributes of another output type were dropped too
      ['type=local,dest=out,compression=zstd', /--output type=local: attribute "compression" is not supported/],
      ['type=tar,dest=out.tar,name=a:1', /--output type=tar: attribute "name" is not supported/],
      ['type=image,name=a:1,dest=x', /--output type=image: attribute "dest" is not supported/],
      ['type=local,dest=out,rewrite-timestamp=true', /--output type=local: attribute "rewrite-timestamp" is not supported/],
      ['type=oci,dest=x,compresion=zstd', /attribute "compresion" is not supported \(did you mean "compression"\?\)/],
      // booleans are booleans, and a registry output always pushes
      ['type=image,push=yes', /attribute "push" wants true or false, got "yes"/],
      ['type=oci,dest=x,tar=no', /attribute "tar" wants true or false, got "no"/],
      ['type=registry,name=r/a:1,push=false', /type=registry always pushes/],
      ['type=docker,dest=x,tar=false', /type=docker writes a docker save archive: tar=false is not supported/],
    ];
    for (const [spec, message] of refused) expect(() => parseOutput(spec, '/w'), spec).toThrow(message);
    // rewrite-timestamp=false asks for unclamped layer times: only true without an epoch
    expect(() => parseOutput('type=oci,dest=x.tar,rewrite-timestamp=false', '/w', 1700000000)).toThrow(/"rewrite-timestamp=false" is not supported: with SOURCE_DATE_EPOCH set/);
  });

  it('accepts the values that ask for what tsbuild does anyway', () => {
    expect(parseOutput('type=oci,dest=x.tar,oci-mediatypes=true,force-compression=false,rewrite-timestamp=true', '/w', 1700000000)).toEqual({ type: 'oci', dest: '/w/x.tar', tar: true });
    expect(parseOutput('type=oci,dest=x.tar,rewrite-timestamp=false', '/w')).toEqual({ type: 'oci', dest: '/w/x.tar', tar: true });
    expect(parseOutput('type=image,name=a:1,push=false,oci-mediatypes=true,store=true', '/w')).toEqual({ type: 'image', name: ['a:1'] });
    expect(parseOutput('type=registry,name=r/a:1,push=true,oci-mediatypes=1', '/w')).toEqual({ type: 'registry', name: ['r/a:1'] });
    expect(parseOutput('type=docker,dest=d.tar,force-compression=false,tar=true', '/w')).toEqual({ type: 'docker', dest: '/w/d.tar' });
    expect(parseOutput('type=oci,dest=dir,tar=False', '/w')).toEqual({ type: 'oci', dest: '/w/dir', tar: false });
    // dest=- (standard output) as before
    expect(parseOutput('-', '/w')).toEqual({ type: 'tar', dest: '-' });
    expect(parseOutput('type=oci,dest=-', '/w')).toEqual({ type: 'oci', dest: '-', tar: true });
  });

  it('a refused attribute stops the build before anything is written; an accepted one builds', { timeout: 60_000 }, async () => {
    const dest = path.join(tmp, 'refused.oci.tar');
    const r = await cli(['--output', `type=oci,dest=${dest},rewrite-timestamp=false`, 'sde'], { SOURCE_DATE_EPOCH: '1700000000' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--output type=oci: attribute "rewrite-timestamp=false" is not supported');
    const r2 = await cli(['--output', `type=oci,dest=${dest},annotation.x=y`, 'sde']);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('--output type=oci: attribute "annotation.x" is not supported');
    expect(await readdir(tmp)).not.toContain('refused.oci.tar');
    const ok = path.join(tmp, 'ok-layout');
    const r3 = await cli(['--output', `type=oci,dest=${ok},tar=false,oci-mediatypes=true,force-compression=false`, 'sde']);
    expect(r3.stderr).not.toContain('ERROR');
    expect(r3.code).toBe(0);
    const index = JSON.parse(await readFile(path.join(ok, 'index.json'), 'utf8')) as { manifests: Array<{ mediaType: string }> };
    expect(index.manifests[0]?.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
  });
});

describe('--secret type=env|file, as buildx reads it', () => {
  const built = async (secret: string, env: Record<string, string>, name: string): Promise<string> => {
    const out = path.join(tmp, name);
    const r = await cli(['--no-cache', '--secret', secret, '--output', `type=local,dest=${out}`, 'secret'], env);
    expect(r.stderr).not.toContain('ERROR');
    expect(r.code).toBe(0);
    return readFile(path.join(out, 'tok'), 'utf8');
  };

  it('type=env takes the variable from src=, source= or env=, else the id', { timeout: 120_000 }, async () => {
    // a file named like the variable must not be read instead
    await writeFile(path.join(tmp, 'MY_TOKEN'), 'from-a-file');
    expect(await built('type=env,id=tok,src=MY_TOKEN', { MY_TOKEN: 'from-env-src' }, 'env-src')).toBe('from-env-src');
    expect(await built('type=env,id=tok,source=MY_TOKEN', { MY_TOKEN: 'from-env-source' }, 'env-source')).toBe('from-env-source');
    expect(await built('type=env,id=tok,env=MY_TOKEN', { MY_TOKEN: 'from-env-env' }, 'env-env')).toBe('from-env-env');
    await writeFile(path.join(tmp, 'tok'), 'file-named-tok');
    expect(await built('type=env,id=tok', { tok: 'env-named-tok' }, 'env-id')).toBe('env-named-tok');
  });

  it('type=file reads the file even when a variable has the id; the untyped defaults stay', { timeout: 120_000 }, async () => {
    await writeFile(path.join(tmp, 'tok'), 'file-named-tok');
    expect(await built('type=file,id=tok', { tok: 'env-named-tok' }, 'file-id')).toBe('file-named-tok');
    await writeFile(path.join(tmp, 'secret.txt'), 'file-src');
    expect(await built('type=file,id=tok,src=secret.txt', { tok: 'env-named-tok' }, 'file-src')).toBe('file-src');
    // without a type: src= is a file, env= a variable, neither: the variable named by the id if set
    expect(await built('id=tok,src=secret.txt', {}, 'untyped-src')).toBe('file-src');
    expect(await built('id=tok', { tok: 'env-named-tok' }, 'untyped-env')).toBe('env-named-tok');
  });

  it('refuses an unknown type or key and contradictions', async () => {
    for (const [secret, message] of [
      ['type=vault,id=tok', 'unknown type "vault" (want env or file)'],
      ['id=tok,scr=x', 'unknown key "scr"'],
      ['type=file,id=tok,env=X', 'type=file reads a file'],
      ['type=env,id=tok,env=A,src=B', 'both name the variable'],
    ] as const) {
      const r = await cli(['--secret', secret, 'secret']);
      expect(r.code, secret).toBe(2);
      expect(r.stderr).toContain(message);
    }
  });
});

describe('SOURCE_DATE_EPOCH is also the build arg, as buildx passes it', () => {
  const epochSeen = async (args: string[], env: Record<string, string>, name: string): Promise<string> => {
    const out = path.join(tmp, name);
    const r = await cli([...args, '--output', `type=local,dest=${out}`, 'sde'], env);
    expect(r.stderr).not.toContain('ERROR');
    expect(r.code).toBe(0);
    return readFile(path.join(out, 'sde'), 'utf8');
  };

  it('from the environment, unless a --build-arg or --source-date-epoch gives it', { timeout: 120_000 }, async () => {
    expect(await epochSeen([], { SOURCE_DATE_EPOCH: '1700000000' }, 'sde-env')).toBe('epoch=1700000000\n');
    expect(await epochSeen(['--source-date-epoch', '1600000000'], { SOURCE_DATE_EPOCH: '1700000000' }, 'sde-flag')).toBe('epoch=1600000000\n');
    expect(await epochSeen(['--build-arg', 'SOURCE_DATE_EPOCH=1500000000'], { SOURCE_DATE_EPOCH: '1700000000' }, 'sde-arg')).toBe('epoch=1500000000\n');
    // unset or empty: no epoch, the ARG is empty
    expect(await epochSeen([], { SOURCE_DATE_EPOCH: '' }, 'sde-none')).toBe('epoch=\n');
  });

  it('refuses a flag and a build arg that disagree', async () => {
    const r = await cli(['--source-date-epoch', '1', '--build-arg', 'SOURCE_DATE_EPOCH=2', 'sde']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--source-date-epoch 1 and --build-arg SOURCE_DATE_EPOCH=2 disagree');
  });
});
