/**
 * Config → the backend-neutral plan: every table's typed rules for one IP family.
 * This folder is the capture logic, once; each backend only renders it.
 */
import type { Config } from '../config/config.js';
import type { Family } from '../config/net.js';
import { planMangle } from './mangle.js';
import { planNat } from './nat.js';
import { planRaw } from './raw.js';
import { TABLES, type Table, type TablePlan } from './rules.js';

export { planMangle, planNat, planRaw };

/** Every table's plan for one family; nat always, mangle and raw when a feature needs them. */
export function planTables(config: Config, family: Family): TablePlan[] {
  const plans: Record<Table, TablePlan | undefined> = {
    nat: planNat(config, family),
    mangle: planMangle(config, family),
    raw: planRaw(config, family),
  };
  return TABLES.flatMap((table) => plans[table] ?? []);
}
