import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isValidSerial, RegistrationParser } from '../../proxy-pod/registration.ts';

const feed = (...chunks: string[]) => {
  const parser = new RegistrationParser();
  let step: ReturnType<RegistrationParser['push']> | undefined;
  for (const chunk of chunks) step = parser.push(Buffer.from(chunk, 'latin1'));
  return step!;
};

test('CR, LF and CRLF each end the serial and are not part of it', () => {
  for (const ending of ['\r', '\n', '\r\n']) {
    const step = feed(`CLD-123456${ending}`);
    assert.equal(step.kind, 'registered');
    if (step.kind === 'registered') {
      assert.is(step.serial, 'CLD-123456');
      assert.is(step.payload.length, 0);
    }
  }
});

test('bytes after the line ending are payload, a CRLF counting as one ending', () => {
  const step = feed('A1\r\n\r\nxyz');
  assert.equal(step.kind === 'registered' && [step.serial, step.payload.toString(), step.endedWithCr], ['A1', '\r\nxyz', false]);
  const lf = feed('A1\n\rpayload');
  assert.equal(lf.kind === 'registered' && lf.payload.toString(), '\rpayload');
});

test('a CR at the end of a read is flagged so the next LF can be recognised', () => {
  const step = feed('SER', 'IAL\r');
  assert.equal(step.kind === 'registered' && [step.serial, step.endedWithCr], ['SERIAL', true]);
});

test('a complete CRLF inside one read leaves no LF pending', () => {
  const step = feed('SERIAL\r\n');
  assert.equal(step.kind === 'registered' && [step.serial, step.endedWithCr], ['SERIAL', false]);
});

test('a serial split over many reads is assembled', () => {
  const step = feed(...'CLD-9\r'.split(''));
  assert.equal(step.kind === 'registered' && step.serial, 'CLD-9');
});

test('64 printable bytes register; 65 are refused', () => {
  const ok = feed(`${'x'.repeat(64)}\r`);
  assert.equal(ok.kind === 'registered' && ok.serial.length, 64);
  assert.equal(feed(`${'x'.repeat(65)}\r`), { kind: 'rejected', reason: 'too-long' });
  assert.equal(feed('x'.repeat(65)), { kind: 'rejected', reason: 'too-long' });
});

test('space, control bytes and non-ASCII are refused', () => {
  for (const bad of ['CLD 1\r', 'CLD\x001\r', 'CLD\x7f\r', 'CLD\xe9\r', '\t\r']) {
    assert.equal(feed(bad), { kind: 'rejected', reason: 'non-printable' }, JSON.stringify(bad));
  }
});

test('an empty line is refused', () => {
  assert.equal(feed('\r'), { kind: 'rejected', reason: 'empty' });
  assert.equal(feed('\n'), { kind: 'rejected', reason: 'empty' });
});

test('an unterminated serial is incomplete', () => {
  assert.equal(feed('CLD-1'), { kind: 'incomplete' });
});

test('isValidSerial matches what the parser accepts', () => {
  assert.ok(isValidSerial('CLD-123456'));
  assert.ok(isValidSerial('~!/?%#'));
  assert.not.ok(isValidSerial(''));
  assert.not.ok(isValidSerial('a b'));
  assert.not.ok(isValidSerial('x'.repeat(65)));
  assert.not.ok(isValidSerial('é'));
});

test.run();
