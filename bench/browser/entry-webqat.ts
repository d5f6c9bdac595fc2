// Page entry for the webqat benchmark page (bench/browser/webqat.html): starts the clock-side protocol.
import { startPage } from './common.ts';
import { webqatSuite } from './suites/webqat.ts';

startPage(webqatSuite());
