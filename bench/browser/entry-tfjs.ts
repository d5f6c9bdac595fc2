// Page entry for the tfjs benchmark page (bench/browser/tfjs.html): starts the clock-side protocol.
import { startPage } from './common.ts';
import { tfjsSuite } from './suites/tfjs.ts';

startPage(tfjsSuite());
