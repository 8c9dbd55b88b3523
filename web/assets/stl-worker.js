// Parses an STL off the page's thread, so a large mesh never freezes the page, and
// hands back its vertex arrays (transferred, not copied).
import { STLLoader } from './vendor/three/STLLoader.js';

self.onmessage = (ev) => {
  try {
    const geometry = new STLLoader().parse(ev.data);
    const position = geometry.getAttribute('position').array;
    const normal = geometry.getAttribute('normal')?.array;
    self.postMessage({ position, normal }, normal ? [position.buffer, normal.buffer] : [position.buffer]);
  } catch (e) {
    self.postMessage({ error: String(e.message || e) });
  }
};
