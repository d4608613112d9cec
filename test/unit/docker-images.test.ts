import { describe, expect, test } from 'vitest';
import { unpulledImages, unpulledImagesNote } from '../../formation/docker-images.js';

// make up MODE=docker when compose could not pull an image (Grafana's, say,
// where no registry answers): the line that names it (formation/docker-images.ts).
// The Docker tier runs the real failure (test/docker/make-up-monitoring.test.ts).

const services = {
  web: { image: 'headcount-web:local', build: { context: '.' } },
  redis: { image: 'redis:8.10.2-trixie' },
  prometheus: { image: 'prom/prometheus:v3.13.0' },
  grafana: { image: 'grafana/grafana:12.4.0' },
};

describe('make up MODE=docker: images compose could not pull', () => {
  test('When an image of a service is not on the engine, then it is named with its service; built images and present ones are not', () => {
    const onEngine = new Set(['redis:8.10.2-trixie', 'prom/prometheus:v3.13.0']);

    const missing = unpulledImages(services, (image) => onEngine.has(image));

    // headcount-web:local is missing too, but it is built: a failed build prints its own error.
    expect(missing).toEqual([{ service: 'grafana', image: 'grafana/grafana:12.4.0' }]);
    expect(unpulledImages(services, () => true)).toEqual([]);
  });

  test('When images are missing, then the note names each, how to pull them, and how to leave their services out', () => {
    const one = unpulledImagesNote([{ service: 'grafana', image: 'grafana/grafana:12.4.0' }]);
    const two = unpulledImagesNote([
      { service: 'grafana', image: 'grafana/grafana:12.4.0' },
      { service: 'prometheus', image: 'prom/prometheus:v3.13.0' },
    ]);

    expect(one).toBe(
      'not on this engine, and compose could not pull it (its error is above): grafana/grafana:12.4.0 (grafana). ' +
        'Pull it where a registry answers (docker pull grafana/grafana:12.4.0; docker save and docker load carry images to this engine), ' +
        'or leave grafana out with a compose override in COMPOSE_FILE (docs/monitoring.md).',
    );
    expect(two).toContain('could not pull them');
    // docker pull takes one image.
    expect(two).toContain('(docker pull grafana/grafana:12.4.0, docker pull prom/prometheus:v3.13.0;');
    expect(two).toContain('leave grafana, prometheus out');
  });
});
