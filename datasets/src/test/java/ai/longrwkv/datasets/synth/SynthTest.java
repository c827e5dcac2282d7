package ai.longrwkv.datasets.synth;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.datasets.TestSupport;
import ai.longrwkv.datasets.binidx.BinIdxDataset;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Synthetic tasks: exact lengths in tokens, the answer where the sample says, the needle intact, determinism. */
class SynthTest {
    @TempDir
    Path dir;

    private static String text(Tokenizer t, int[] tokens, int from, int to) {
        return new String(t.decode(Arrays.copyOfRange(tokens, from, to)), StandardCharsets.UTF_8);
    }

    /** The checks every sample must pass. */
    private static void checkSample(Tokenizer t, Sample s, int length) {
        assertEquals(length, s.tokens().length, "length in tokens");
        assertEquals(length, s.flags().length);
        assertArrayEquals(s.answerTokens(), Arrays.copyOfRange(s.tokens(), s.answerStart(), length), "answer at answerStart");
        assertEquals(" " + s.answer(), text(t, s.tokens(), s.answerStart(), length));
        for (int i = 0; i < length; i++) assertEquals(i >= s.answerStart() ? 1 : 0, s.flags()[i], "flag " + i + ": only the answer is trained");
        Sample.Needle q = s.queriedNeedle();
        String needle = text(t, s.tokens(), q.start(), q.start() + q.length());
        assertTrue(needle.contains(q.value()) && needle.contains(q.key()), "needle span holds key and value: " + needle);
        assertEquals(s.answer(), q.value());
        String prompt = text(t, s.tokens(), 0, s.answerStart());
        assertTrue(prompt.endsWith(s.task().equals("passkey") ? PasskeyTask.QUESTION : NeedleTask.question(s.key())), "question at the end");
        assertTrue(prompt.startsWith(s.task().equals("passkey") ? PasskeyTask.INTRO : NeedleTask.INTRO), "intro first");
        for (Sample.Needle n : s.needles()) {
            String ntext = text(t, s.tokens(), n.start(), n.start() + n.length());
            assertTrue(ntext.startsWith("\n") && ntext.endsWith("\n") && ntext.contains(n.value()), ntext);
        }
    }

    @Test
    void passkeyWithBytesAtManyLengthsAndDepths() {
        Tokenizer t = TestSupport.bytes();
        PasskeyTask task = new PasskeyTask(t);
        for (int length : new int[]{400, 1000, 4096}) {
            for (double depth : new double[]{0, 0.1, 0.5, 0.9, 1}) {
                Sample s = task.generate(length, depth, new SplittableRandom(length + (long) (depth * 100)));
                checkSample(t, s, length);
                int k = Integer.parseInt(s.key());
                assertTrue(k >= 1 && k <= 50000);
                assertEquals(PasskeyTask.needleText(k), text(t, s.tokens(), s.queriedNeedle().start(), s.queriedNeedle().start() + s.queriedNeedle().length()));
                // moved back to a sentence start: never after the requested depth, and within one filler sentence of it
                assertTrue(s.depth() <= depth + 1e-9, "actual depth " + s.depth() + " <= requested " + depth);
                int filler = countFiller(s);
                assertTrue((depth - s.depth()) * filler <= 25, "within one sentence of the requested depth");
            }
        }
    }

    @Test
    void variedPasskeysDrawEveryWordingAndKeyLengthAndKeepTheEvalQuestion() {
        Tokenizer t = TestSupport.bytes();
        PasskeyTask task = new PasskeyTask(t, Haystack.synthetic(t), true);
        java.util.Set<Integer> digits = new java.util.HashSet<>();
        java.util.Set<String> wordings = new java.util.HashSet<>();
        for (int i = 0; i < 200; i++) {
            Sample s = task.generate(600, 0.5, new SplittableRandom(i));
            checkSample(t, s, 600);   // intro first, the eval's question last, the needle holds the key
            int k = Integer.parseInt(s.key());
            assertTrue(k >= 1 && k <= PasskeyTask.MAX_KEY, "key " + k);
            digits.add(s.key().length());
            String needle = text(t, s.tokens(), s.queriedNeedle().start(), s.queriedNeedle().start() + s.queriedNeedle().length());
            wordings.add(needle.replace(s.key(), "{K}"));
        }
        assertEquals(java.util.Set.of(1, 2, 3, 4, 5), digits, "every key length 1..5 digits");
        assertEquals(java.util.Set.of(PasskeyTask.NEEDLE_VARIANTS), wordings, "every wording, the Landmark one among them");
        // not varied: the Landmark needle only, as the eval
        Sample plain = new PasskeyTask(t).generate(600, 0.5, new SplittableRandom(3));
        assertEquals(PasskeyTask.needleText(Integer.parseInt(plain.key())),
                text(t, plain.tokens(), plain.queriedNeedle().start(), plain.queriedNeedle().start() + plain.queriedNeedle().length()));
    }

    /** Tokens that are neither intro, needle, question nor answer (byte tokenizer: characters). */
    private static int countFiller(Sample s) {
        int fixed = PasskeyTask.INTRO.length() + PasskeyTask.QUESTION.length() + s.answerTokens().length;
        for (Sample.Needle n : s.needles()) fixed += n.length();
        return s.length() - fixed;
    }

    @Test
    void niahAndMultikeyWithTheWorldTokenizer() {
        Tokenizer world = TestSupport.world();
        Haystack hay = Haystack.synthetic(world);
        SynthTask niah = SynthTasks.create("niah", world, hay, 1);
        SynthTask multi = SynthTasks.create("multikey", world, hay, 4);
        for (int length : new int[]{1024, 4096, 16384}) {
            for (int i = 0; i < 3; i++) {
                checkSample(world, SynthTasks.sample(niah, 5, length, i, null), length);
                Sample m = SynthTasks.sample(multi, 5, length, i, new double[]{0.25, 0.75});
                checkSample(world, m, length);
                assertEquals(4, m.needles().size());
                assertEquals(4, m.needles().stream().map(Sample.Needle::key).distinct().count(), "distinct keys");
                assertEquals(1, m.needles().stream().filter(Sample.Needle::queried).count());
                for (int k = 1; k < m.needles().size(); k++) assertTrue(m.needles().get(k).start() > m.needles().get(k - 1).start(), "needles in prompt order");
            }
            checkSample(world, SynthTasks.sample(new PasskeyTask(world), 5, length, 0, null), length);
        }
    }

    @Test
    void haystackFromATextFile() throws IOException {
        Path book = TestSupport.write(dir.resolve("book.txt"), "Call me Ishmael. Some years ago, never mind how long precisely, I went to sea!\n\n"
                + "It is a way I have of driving off the spleen? Whenever I find myself growing grim, I go.");
        Tokenizer t = TestSupport.bytes();
        Haystack hay = Haystack.fromFile(book, t);
        assertEquals(4, hay.sentenceCount());
        Sample s = new PasskeyTask(t, hay).generate(2000, 0.5, new SplittableRandom(1));
        checkSample(t, s, 2000);
        String prompt = text(t, s.tokens(), 0, s.answerStart());
        assertTrue(prompt.contains("Call me Ishmael.") && !prompt.contains("The grass is green"));
        Path bad = TestSupport.writeBytes(dir.resolve("bad.txt"), new byte[]{'o', 'k', '\n', (byte) 0xff});
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Haystack.fromFile(bad, t));
        assertTrue(e.getMessage().contains("bad.txt line 2"), e.getMessage());
    }

    @Test
    void tooShortALengthIsAClearError() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new PasskeyTask(TestSupport.bytes()).generate(100, 0.5, new SplittableRandom(1)));
        assertTrue(e.getMessage().contains("too short for the passkey task"), e.getMessage());
    }

    @Test
    void sameSeedSameBytesAndTheDatasetAgreesWithTheSamples() throws IOException {
        Tokenizer t = TestSupport.bytes();
        SynthTask task = SynthTasks.create("multikey", t, Haystack.synthetic(t), 3);
        List<Integer> lengths = List.of(1024, 3000);
        SynthDatasetWriter.write(task, t, "bytes", "synthetic", lengths, 3, 77, null, dir.resolve("a"));
        SynthDatasetWriter.write(task, t, "bytes", "synthetic", lengths, 3, 77, null, dir.resolve("b"));
        SynthDatasetWriter.write(task, t, "bytes", "synthetic", lengths, 3, 78, null, dir.resolve("c"));
        for (String ext : new String[]{".bin", ".idx", ".mask", ".samples.jsonl", ".meta.json"}) {
            assertArrayEquals(Files.readAllBytes(dir.resolve("a" + ext)), Files.readAllBytes(dir.resolve("b" + ext)), ext);
        }
        assertFalse(Arrays.equals(Files.readAllBytes(dir.resolve("a.bin")), Files.readAllBytes(dir.resolve("c.bin"))), "another seed");
        try (BinIdxDataset data = BinIdxDataset.open(dir.resolve("a"))) {
            assertEquals(6, data.documentCount());
            for (int i = 0; i < 6; i++) {
                int length = lengths.get(i / 3);
                Sample s = SynthTasks.sample(task, 77, length, i % 3, null);
                int[] doc = data.document(i);
                assertEquals(length + 1, doc.length, "sample + token 0");
                assertArrayEquals(s.tokens(), Arrays.copyOf(doc, length), "the generator gives back the stored sample");
                assertEquals(0, doc[length]);
                byte[] flags = data.mask(i);
                assertEquals(0, flags[length], "the final token 0 is not trained");
                assertEquals(s.answerTokens().length, countOnes(flags), "only the answer is trained");
            }
        }
        String firstLine = Files.readAllLines(dir.resolve("a.samples.jsonl")).get(0);
        Sample s0 = SynthTasks.sample(task, 77, 1024, 0, null);
        assertTrue(firstLine.contains("\"answer\":\"" + s0.answer() + "\"") && firstLine.contains("\"answer_start\":" + s0.answerStart()), firstLine);
        assertNotEquals(SynthTasks.sample(task, 77, 1024, 0, null).key(), SynthTasks.sample(task, 77, 1024, 1, null).key());
    }

    @Test
    void trainEndFlagsTheTokenAfterEachAnswerAndNothingElse() throws IOException {
        Tokenizer t = TestSupport.bytes();
        SynthTask task = SynthTasks.create("passkey", t, Haystack.synthetic(t), 1);
        List<Integer> lengths = List.of(600, 1000);
        SynthDatasetWriter.write(task, t, "bytes", "synthetic", lengths, 2, 5, null, dir.resolve("plain"));
        SynthDatasetWriter.write(task, t, "bytes", "synthetic", lengths, 2, 5, null, true, dir.resolve("end"));
        assertArrayEquals(Files.readAllBytes(dir.resolve("plain.bin")), Files.readAllBytes(dir.resolve("end.bin")), "the same tokens");
        try (BinIdxDataset plain = BinIdxDataset.open(dir.resolve("plain")); BinIdxDataset end = BinIdxDataset.open(dir.resolve("end"))) {
            for (int i = 0; i < 4; i++) {
                byte[] p = plain.mask(i), e = end.mask(i);
                int last = p.length - 1;   // the token 0 after the sample
                assertEquals(0, p[last]);
                assertEquals(1, e[last], "the end token is trained");
                assertArrayEquals(Arrays.copyOf(p, last), Arrays.copyOf(e, last), "the answer flags are unchanged");
                Sample s = SynthTasks.sample(task, 5, lengths.get(i / 2), i % 2, null);
                assertEquals(s.answerStart() + s.answerTokens().length, last, "the answer ends right before the token 0");
            }
        }
        assertTrue(Files.readString(dir.resolve("end.meta.json")).contains("\"end_trained\": true"));
        assertTrue(Files.readString(dir.resolve("plain.meta.json")).contains("\"end_trained\": false"));
    }

    private static int countOnes(byte[] flags) {
        int n = 0;
        for (byte f : flags) n += f;
        return n;
    }
}
