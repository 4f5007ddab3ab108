/** What the command line and the environment (or a pod's annotations) said, before validation. */
export interface GivenOption {
  readonly value: string | boolean;
  /** How the user wrote it: `--proxy-port`, or `--proxy-port (from ENVOY_PORT)`. */
  readonly origin: string;
  readonly fromEnv: boolean;
}

export type GivenOptions = ReadonlyMap<string, GivenOption>;
