/**
 * The same number, as a small integer where it is one: arithmetic on epoch ms yields
 * heap numbers even when the result is integral, and storing one boxes the field.
 */
export const small = (ms: number): number => {
  const int = ms | 0;
  return int === ms ? int : ms;
};
