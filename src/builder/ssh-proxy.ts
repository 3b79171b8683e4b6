import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A socket forwarding to an SSH agent, owned and moded as a RUN step's ssh mount asks. */
export interface AgentProxy {
  readonly socket: string;
  close(): Promise<void>;
}

/**
 * Listens on a new socket that forwards each connection to `agent`, with the owner and mode a
 * `RUN --mount=type=ssh,uid=…,gid=…,mode=…` asks for (BuildKit's defaults: root, 0600). The
 * agent's own socket, bound as it is, would carry its host owner and mode instead: a step running
 * as another user could not use it, or any user could. The socket lives in a private directory
 * under the temp dir (a socket path is limited to 107 bytes).
 */
export async function agentProxy(agent: string, owner: { readonly uid: number; readonly gid: number; readonly mode: number }): Promise<AgentProxy> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tsbuild-ssh-'));
  const socket = path.join(dir, 'agent.sock');
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(agent);
    open.add(client);
    open.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream).pipe(client);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socket, () => resolve());
    });
    await chown(socket, owner.uid, owner.gid);
    await chmod(socket, owner.mode);
  } catch (err) {
    server.close();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    socket,
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
