import type { Reporter, TestModule, TestSuite, TestCase } from 'vitest/node';

/**
 * Prints one line per skipped group with the reason carried in its name, and a closing
 * `N passed, N failed, N skipped` line, so nothing is ever skipped silently.
 */
export default class SkipReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const skippedGroups: string[] = [];
    const visit = (node: TestSuite | TestModule): void => {
      for (const child of node.children) {
        if (child.type === 'suite') {
          if (child.state() === 'skipped') skippedGroups.push(`${child.module.moduleId.replace(process.cwd() + '/', '')}: ${child.fullName}`);
          visit(child);
        } else {
          const state = (child as TestCase).result().state;
          if (state === 'passed') passed++;
          else if (state === 'failed') failed++;
          else skipped++;
        }
      }
    };
    for (const module of testModules) visit(module);
    for (const group of skippedGroups) console.log(`skipped group: ${group}`);
    console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  }
}
