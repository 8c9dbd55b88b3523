// The design page's 3D viewer: three.js with STLLoader (in a worker), 3MFLoader (on the
// page: it needs DOMParser, which workers lack; loaded only when a 3MF is shown) and
// OrbitControls.
import * as THREE from './vendor/three/three.module.js';
import { OrbitControls } from './vendor/three/OrbitControls.js';

const box = document.getElementById('viewer');
const select = document.querySelector('[data-viewer-file]');
const msg = box.querySelector('[data-viewer-msg]');
const loadButton = box.querySelector('[data-viewer-load]');
const say = (text) => { msg.textContent = text; msg.hidden = !text; };

let renderer;
try {
  renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
} catch (e) {
  say('This browser cannot show 3D (WebGL is off). The files are below.');
}

if (renderer) {
  renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
  box.prepend(renderer.domElement);
  renderer.domElement.setAttribute('aria-label', '3D view of the selected mesh; drag to turn, scroll to zoom');
  renderer.domElement.setAttribute('role', 'img');
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0xe9eef3);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x667788, 2.2));
  const sun = new THREE.DirectionalLight(0xffffff, 1.8);
  sun.position.set(1, 2, 3);
  scene.add(sun);
  const camera = new THREE.PerspectiveCamera(40, 1, 0.1, 100000);
  camera.up.set(0, 0, 1); // printers build along Z
  const controls = new OrbitControls(camera, renderer.domElement);
  const material = new THREE.MeshStandardMaterial({ color: 0x3b82b6, metalness: 0.05, roughness: 0.6, side: THREE.DoubleSide });
  let mesh = null, fitted = null, token = 0;

  const draw = () => renderer.render(scene, camera);
  const resize = () => {
    const w = box.clientWidth, h = box.clientHeight;
    renderer.setSize(w, h, false);
    camera.aspect = w / Math.max(h, 1);
    camera.updateProjectionMatrix();
    draw();
  };
  new ResizeObserver(resize).observe(box);
  controls.addEventListener('change', draw);

  const fit = () => {
    if (!fitted) return;
    camera.position.copy(fitted.position);
    controls.target.copy(fitted.target);
    controls.update();
    draw();
  };

  const meshOf = (position, normal) => {
    const g = new THREE.BufferGeometry();
    g.setAttribute('position', new THREE.BufferAttribute(position, 3));
    if (normal) g.setAttribute('normal', new THREE.BufferAttribute(normal, 3));
    else g.computeVertexNormals();
    return new THREE.Mesh(g, material);
  };

  // show puts an object (one mesh, or a 3MF's build: a group of placed meshes) in the
  // scene in place of the last, all drawn in the one material, and fits the view to it.
  const show = (object) => {
    if (mesh) {
      scene.remove(mesh);
      mesh.traverse((o) => { if (o.isMesh) o.geometry.dispose(); });
    }
    object.traverse((o) => { if (o.isMesh) o.material = material; });
    mesh = object;
    scene.add(mesh);
    const s = new THREE.Box3().setFromObject(mesh).getBoundingSphere(new THREE.Sphere());
    const r = Math.max(s.radius, 1e-3);
    const dist = r / Math.sin((camera.fov * Math.PI) / 360) * 1.15;
    fitted = { target: s.center.clone(), position: s.center.clone().add(new THREE.Vector3(1, -1.4, 0.9).normalize().multiplyScalar(dist)) };
    camera.near = dist / 100; camera.far = dist * 100;
    camera.updateProjectionMatrix();
    fit();
    say('');
    box.dataset.loaded = select.selectedOptions[0]?.textContent || 'mesh';
  };

  const parse = (buffer) => new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./stl-worker.js', import.meta.url), { type: 'module' });
    worker.onmessage = (ev) => { worker.terminate(); ev.data.error ? reject(new Error(ev.data.error)) : resolve(ev.data); };
    worker.onerror = (ev) => { worker.terminate(); reject(new Error(ev.message || 'the mesh could not be read')); };
    worker.postMessage(buffer, [buffer]);
  });

  const load = async () => {
    const mine = ++token;
    loadButton.hidden = true;
    const opt = select.selectedOptions[0];
    try {
      const resp = await fetch(opt.value, { credentials: 'same-origin' });
      if (!resp.ok) throw new Error('the hub answered ' + resp.status);
      const total = Number(resp.headers.get('Content-Length')) || Number(opt.dataset.size) || 0;
      const reader = resp.body.getReader();
      const chunks = [];
      let got = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
        got += value.length;
        if (mine !== token) return;
        say(total ? `Loading… ${Math.round((100 * got) / total)}%` : `Loading… ${(got / 1e6).toFixed(1)} MB`);
      }
      const buf = new Uint8Array(got);
      let at = 0;
      for (const c of chunks) { buf.set(c, at); at += c.length; }
      say('Reading the mesh…');
      let object;
      if (opt.dataset.format === '3mf') {
        const { ThreeMFLoader } = await import('./vendor/three/3MFLoader.js');
        object = new ThreeMFLoader().parse(buf.buffer);
        if (!object.children.length) throw new Error('the 3MF places nothing in its build');
      } else {
        const { position, normal } = await parse(buf.buffer);
        object = meshOf(position, normal);
      }
      if (mine === token) show(object);
    } catch (e) {
      if (mine === token) say('The mesh could not be shown: ' + e.message);
    }
  };

  const choose = () => {
    const opt = select.selectedOptions[0];
    if (!opt) return;
    if (Number(opt.dataset.size) > Number(box.dataset.autoLimit)) {
      loadButton.textContent = `Load 3D view (${(Number(opt.dataset.size) / 1e6).toFixed(0)} MB)`;
      loadButton.hidden = false;
      say('Large mesh: it loads when you ask.');
    } else {
      load();
    }
  };
  select.addEventListener('change', choose);
  loadButton.addEventListener('click', load);
  document.querySelector('[data-viewer-reset]').addEventListener('click', fit);
  const wire = document.querySelector('[data-viewer-wire]');
  wire.addEventListener('click', () => {
    material.wireframe = !material.wireframe;
    wire.setAttribute('aria-pressed', String(material.wireframe));
    draw();
  });
  resize();
  choose();
}
