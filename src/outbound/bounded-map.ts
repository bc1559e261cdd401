/**
 * The bound on what blackpony remembers per domain (sightings, records, MTA-STS policies): a Map
 * iterates in insertion order, so the entry set longest ago is the first, and goes first.
 */

/** Sets `key` as the newest entry of `map`, dropping the oldest beyond `max`. */
export function setNewest<Key, Value>(map: Map<Key, Value>, key: Key, value: Value, max: number): void {
  map.delete(key);
  map.set(key, value);
  for (const oldest of map.keys()) {
    if (map.size <= max) return;
    map.delete(oldest);
  }
}
