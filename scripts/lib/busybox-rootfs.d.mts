export declare const BUSYBOX_RECIPE_VERSION: number;
export declare function busyboxRootfsTar(options?: { busybox?: string; mtime?: number }): Promise<{ tar: Buffer; busyboxSha256: string; applets: string[] }>;
export declare function busyboxConfig(platform: { architecture: string; os?: string; variant?: string }): {
  architecture: string;
  os: string;
  variant?: string;
  config: { Env: string[]; Cmd: string[] };
  rootfs: { type: 'layers'; diff_ids: never[] };
  history: never[];
};
