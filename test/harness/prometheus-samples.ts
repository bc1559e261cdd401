/**
 * Reading Prometheus text: the sample lines of an exposition (what /metrics serves), and the
 * series selectors of a PromQL expression (what alert rules and dashboards ask for), so tests can
 * hold one against the other.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The sample lines of a Prometheus text exposition (comments skipped). */
export function parseSamples(text: string): Sample[] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (match === null) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
      return { name: match[1]!, labels: labelPairs(match[2] ?? '', '='), value: Number(match[3]) };
    });
}

function labelPairs(text: string, operator: '=' | '=~'): Record<string, string> {
  const labels: Record<string, string> = {};
  const pattern = new RegExp(`([a-zA-Z_][a-zA-Z0-9_]*)\\s*${operator}\\s*"((?:[^"\\\\]|\\\\.)*)"`, 'g');
  for (const [, name, value] of text.matchAll(pattern)) labels[name!] = value!;
  return labels;
}

/** A series selector in a PromQL expression: a metric name and its `=` and `=~` label matchers. */
export interface Selector {
  name: string;
  equal: Record<string, string>;
  regex: Record<string, string>;
}

/** Every selector of metrics named with `prefix` in a PromQL expression. */
export function selectors(expression: string, prefix: string): Selector[] {
  const pattern = new RegExp(`\\b(${prefix}[a-zA-Z0-9_:]*)\\s*(?:\\{([^}]*)\\})?`, 'g');
  return [...expression.matchAll(pattern)].map(([, name, matchers = '']) => ({
    name: name!,
    equal: labelPairs(matchers.replace(/=~\s*"(?:[^"\\]|\\.)*"/g, ''), '='),
    regex: labelPairs(matchers, '=~'),
  }));
}

/**
 * Why no exported sample answers the selector, or null when one does. Labels that Prometheus adds
 * at scrape time (`instance`, `job`) are not the exporter's; a regex matcher must be a plain
 * alternation (`a|b`) and each alternative must exist.
 */
export function unmatchedSelector(selector: Selector, samples: readonly Sample[]): string | null {
  const named = samples.filter((sample) => sample.name === selector.name);
  if (named.length === 0) return `${selector.name}: no such metric`;
  const scrapeLabels = new Set(['instance', 'job']);
  const wanted: [string, string][] = [
    ...Object.entries(selector.equal),
    ...Object.entries(selector.regex).flatMap(([label, pattern]) => pattern.split('|').map((value): [string, string] => [label, value])),
  ].filter(([label]) => !scrapeLabels.has(label));
  for (const [label, value] of wanted) {
    if (!named.some((sample) => sample.labels[label] === value)) return `${selector.name}: no series with ${label}="${value}"`;
  }
  return null;
}
