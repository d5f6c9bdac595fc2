// Page entry for the webqat benchmark page (bench/browser/webqat.html): starts the page protocol;
// `__bench.profile(name)` adds webqat's per-kernel profile (bench/browser/suites/webqat-profile.ts).
import { type TrainBenchName as BenchName, startPage } from './common.ts';
import { profileWebqat } from './suites/webqat-profile.ts';
import { webqatSuite } from './suites/webqat.ts';

startPage(webqatSuite());
(globalThis as unknown as { __bench: Record<string, unknown> }).__bench.profile = (name: BenchName) => profileWebqat(name);
