// Page entry for the jax benchmark page (bench/browser/jax.html): starts the clock-side protocol.
import { startPage } from './common.ts';
import { jaxSuite } from './suites/jax.ts';

startPage(jaxSuite());
