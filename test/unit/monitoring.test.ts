/**
 * The alert rules (deploy/prometheus/) and the Grafana dashboard (deploy/grafana/) ask only for
 * series blackpony exports: every metric name and label value in their expressions is held
 * against a scrape of the daemon's registry. promtool, Prometheus's own checker, validates the
 * rules and runs their unit tests (each alert fires on its event, stays quiet otherwise).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createMetrics } from '../../src/daemon/metrics.js';
import { PROJECT_ROOT } from '../harness/cli.js';
import { runCommand } from '../harness/command.js';
import { parseSamples, selectors, unmatchedSelector, type Sample } from '../harness/prometheus-samples.js';
import { describeWith, executable } from '../harness/requirements.js';

const PROMETHEUS = join(PROJECT_ROOT, 'deploy/prometheus');
const RULES = join(PROMETHEUS, 'blackpony-alerts.yml');
const DASHBOARD = join(PROJECT_ROOT, 'deploy/grafana/blackpony-dashboard.json');
const PROMTOOL = executable('promtool', '/usr/bin/promtool', 'Debian package prometheus');

interface RuleFile {
  groups: { name: string; rules: { alert: string; expr: string }[] }[];
}

function alertRules(): { alert: string; expr: string }[] {
  return (parse(readFileSync(RULES, 'utf8')) as RuleFile).groups.flatMap((group) => group.rules);
}

/** Every PromQL expression of the dashboard: panel targets and template variable queries. */
function dashboardExpressions(): string[] {
  const expressions: string[] = [];
  const visit = (node: unknown, key: string): void => {
    if (typeof node === 'string' && (key === 'expr' || key === 'definition')) expressions.push(node);
    else if (Array.isArray(node)) node.forEach((item) => visit(item, key));
    else if (node !== null && typeof node === 'object') for (const [name, value] of Object.entries(node)) visit(value, name);
  };
  visit(JSON.parse(readFileSync(DASHBOARD, 'utf8')), '');
  return expressions;
}

async function exported(): Promise<Sample[]> {
  return parseSamples(await createMetrics().registry.metrics());
}

/** Each selector of blackpony metrics in the expressions that no exported series answers. */
function unmatched(expressions: readonly string[], samples: readonly Sample[]): string[] {
  return expressions.flatMap((expression) => selectors(expression, 'blackpony_').flatMap((selector) => unmatchedSelector(selector, samples) ?? []));
}

describe('monitoring files', () => {
  it('alerts on deferrals, testing fallbacks, handshake failures, failing lookups and an unreachable Postfix', () => {
    const rules = alertRules();
    expect(rules.map((rule) => rule.alert)).toEqual([
      'BlackponyPolicyDeferrals',
      'BlackponyTestingFailures',
      'BlackponyHandshakeFailures',
      'BlackponyTransportLookupsFailing',
      'BlackponyPostfixUnreachable',
      'BlackponyPostfixRefusing',
    ]);
    for (const rule of rules) expect(selectors(rule.expr, 'blackpony_'), rule.alert).not.toEqual([]);
  });

  it('the alert rules ask only for exported metrics and label values', async () => {
    const samples = await exported();
    expect(
      unmatched(
        alertRules().map((rule) => rule.expr),
        samples,
      ),
    ).toEqual([]);
  });

  it('the dashboard asks only for exported metrics and label values', async () => {
    const expressions = dashboardExpressions();
    expect(expressions.length).toBeGreaterThan(10);
    expect(unmatched(expressions, await exported())).toEqual([]);
  });

  it('the check itself finds a metric that is not exported, or a label value that is not', async () => {
    const samples = await exported();
    expect(unmatched(['rate(blackpony_deferrals_total[5m])'], samples)).toEqual(['blackpony_deferrals_total: no such metric']);
    expect(unmatched(['blackpony_postfix_failures_total{kind=~"connect|refuse"}'], samples)).toEqual([
      'blackpony_postfix_failures_total: no series with kind="refuse"',
    ]);
    expect(unmatched(['blackpony_policy_deferrals_total{instance="mx",reason="dns"}'], samples)).toEqual([]);
  });
});

describeWith([PROMTOOL], 'alert rules checked by promtool', () => {
  it('promtool check rules accepts the rules file', async () => {
    const result = await runCommand('/usr/bin/promtool', ['check', 'rules', RULES]);
    expect(result.stdout + result.stderr).toContain('SUCCESS: 6 rules found');
    expect(result.exitCode).toBe(0);
  });

  it("promtool test rules passes the rules' unit tests", async () => {
    const result = await runCommand('/usr/bin/promtool', ['test', 'rules', 'blackpony-alerts.test.yml'], { cwd: PROMETHEUS });
    expect(result.stdout + result.stderr).toContain('SUCCESS');
    expect(result.exitCode).toBe(0);
  });
});
