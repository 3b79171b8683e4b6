import { UserResolutionError } from './errors.js';
import { readFileInLayers } from './layers.js';

export interface ResolvedUser {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups (from /etc/group when no group was named). */
  readonly groups: readonly number[];
  readonly home?: string;
}

interface PasswdEntry { name: string; uid: number; gid: number; home: string }
interface GroupEntry { name: string; gid: number; members: string[] }

function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.trim()) continue;
    const f = line.split(':');
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (f.length < 4 || !Number.isInteger(uid) || !Number.isInteger(gid)) continue;
    out.push({ name: f[0]!, uid, gid, home: f[5] ?? '' });
  }
  return out;
}

function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.trim()) continue;
    const f = line.split(':');
    const gid = Number(f[2]);
    if (f.length < 3 || !Number.isInteger(gid)) continue;
    out.push({ name: f[0]!, gid, members: (f[3] ?? '').split(',').map((s) => s.trim()).filter(Boolean) });
  }
  return out;
}

const isId = (s: string) => /^\d+$/.test(s) && Number(s) <= 0xfffffffe;

/**
 * Resolves a Dockerfile USER (`name`, `uid`, `name:group`, `uid:gid`, mixed) against the
 * rootfs's /etc/passwd and /etc/group, as runc/BuildKit do: a name must exist; a numeric uid
 * need not (gid 0 then); supplementary groups come from /etc/group only when no group is named.
 * `layers` are the root's directories, top first.
 */
export async function resolveUser(layers: readonly string[], user: string | undefined): Promise<ResolvedUser> {
  const spec = (user ?? '').trim() || '0';
  const colon = spec.indexOf(':');
  const userPart = colon < 0 ? spec : spec.slice(0, colon);
  const groupPart = colon < 0 ? undefined : spec.slice(colon + 1);
  const needPasswd = true;
  const passwd = needPasswd ? parsePasswd((await readFileInLayers(layers, '/etc/passwd'))?.toString('utf8') ?? '') : [];
  const groupText = (await readFileInLayers(layers, '/etc/group'))?.toString('utf8');
  const groups = parseGroup(groupText ?? '');

  let entry: PasswdEntry | undefined;
  let uid: number;
  let gid = 0;
  if (isId(userPart)) {
    uid = Number(userPart);
    entry = passwd.find((p) => p.uid === uid);
  } else {
    entry = passwd.find((p) => p.name === userPart);
    if (!entry) throw new UserResolutionError(`unable to find user ${userPart}: no matching entries in passwd file`);
    uid = entry.uid;
  }
  if (entry) gid = entry.gid;

  let supplementary: number[] = [];
  if (groupPart !== undefined && groupPart !== '') {
    if (isId(groupPart)) gid = Number(groupPart);
    else {
      const g = groups.find((x) => x.name === groupPart);
      if (!g) throw new UserResolutionError(`unable to find group ${groupPart}: no matching entries in group file`);
      gid = g.gid;
    }
  } else if (entry) {
    const name = entry.name;
    supplementary = groups.filter((g) => g.members.includes(name) && g.gid !== gid).map((g) => g.gid);
  }
  return { uid, gid, groups: [...new Set(supplementary)].sort((a, b) => a - b), ...(entry?.home ? { home: entry.home } : {}) };
}
