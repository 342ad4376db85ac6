export const BOOT_TOPOLOGY = Symbol('BOOT_TOPOLOGY');
export const ROUTE_LABELS = Symbol('ROUTE_LABELS');
