package ai.longrwkv.eval;

import ai.longrwkv.core.testing.TestModels;
import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.Tokenizers;
import ai.longrwkv.datasets.synth.Haystack;
import ai.longrwkv.datasets.synth.NeedleTask;
import ai.longrwkv.datasets.synth.PasskeyTask;
import ai.longrwkv.datasets.synth.Sample;
import ai.longrwkv.datasets.synth.SynthTask;
import ai.longrwkv.datasets.synth.SynthTasks;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 6, test 1: the prompts the evals build (the `data synth` generators, sample index trial * depths + depth)
 * have the requested length in tokens, and the queried needle sits at the requested depth, in tokens of the
 * tokenizer in use.
 */
class PromptConstructionTest {
    private static final double[] DEPTHS = {0, 0.1, 0.25, 0.5, 0.75, 0.9, 1};

    @Test
    void passkeyPromptsHaveTheLengthAndKeyDepthInByteTokens() {
        checkGrid(Tokenizers.parse("bytes"), new PasskeyTask(Tokenizers.parse("bytes")), new int[]{400, 1000, 3000});
    }

    @Test
    void passkeyPromptsHaveTheLengthAndKeyDepthInWorldTokens() {
        Tokenizer world = Tokenizers.parse("world:" + TestModels.oracle("rwkv_vocab_v20230424.txt"));
        checkGrid(world, new PasskeyTask(world), new int[]{200, 1024, 4096});
    }

    @Test
    void needlePromptsHaveTheLengthAndNeedleDepth() {
        Tokenizer bytes = Tokenizers.parse("bytes");
        checkGrid(bytes, new NeedleTask(bytes, Haystack.synthetic(bytes), 1), new int[]{500, 2000});
        checkGrid(bytes, new NeedleTask(bytes, Haystack.synthetic(bytes), 4), new int[]{800, 2000});
    }

    private static void checkGrid(Tokenizer tok, SynthTask task, int[] lengths) {
        for (int length : lengths) {
            for (int trial = 0; trial < 3; trial++) {
                for (int d = 0; d < DEPTHS.length; d++) {
                    Sample s = SynthTasks.sample(task, 7, length, trial * DEPTHS.length + d, DEPTHS);
                    check(tok, s, length, DEPTHS[d]);
                }
            }
        }
    }

    private static void check(Tokenizer tok, Sample s, int length, double depth) {
        String where = s.task() + " length " + length + " depth " + depth;
        assertEquals(length, s.tokens().length, where + ": prompt + answer length in tokens");
        assertEquals(length - s.answerTokens().length, s.promptTokens().length, where + ": the prompt is what precedes the answer");
        assertArrayEquals(s.answerTokens(), Arrays.copyOfRange(s.tokens(), s.answerStart(), length), where);

        Sample.Needle needle = s.queriedNeedle();
        String needleText = text(tok, Arrays.copyOfRange(s.tokens(), needle.start(), needle.start() + needle.length()));
        assertTrue(needleText.contains(needle.value()), where + ": the queried value is inside the needle span: " + needleText);
        if (s.task().equals("passkey")) {
            assertEquals("\nThe pass key is " + s.answer() + ". Remember it. " + s.answer() + " is the pass key.\n", needleText, where);
        } else {
            assertTrue(needleText.contains("One of the special magic numbers for " + needle.key() + " is: " + needle.value() + "."), where);
        }

        // the filler is everything between the intro and the question except the needles; the needle starts at
        // depth * filler tokens of it, moved back to a sentence start (at most one filler sentence, ~10 tokens)
        String intro = s.task().equals("passkey") ? PasskeyTask.INTRO : NeedleTask.INTRO;
        int introTokens = tok.encode(intro.getBytes(StandardCharsets.UTF_8)).length;
        int questionStart = s.answerStart() - questionTokens(tok, s);
        int needleTokens = s.needles().stream().mapToInt(Sample.Needle::length).sum();
        int filler = questionStart - introTokens - needleTokens;
        int fillerBefore = needle.start() - introTokens;
        for (Sample.Needle n : s.needles()) if (n.start() < needle.start()) fillerBefore -= n.length();
        double actual = filler == 0 ? 0 : fillerBefore / (double) filler;
        assertEquals(s.depth(), actual, 1e-9, where + ": the sample reports the depth it used");
        int sentence = tok.encode(Haystack.PASSKEY_FILLER.getBytes(StandardCharsets.UTF_8)).length;
        assertTrue(fillerBefore <= Math.round(depth * filler) && Math.round(depth * filler) - fillerBefore <= sentence,
                where + ": needle at filler token " + fillerBefore + " of " + filler + ", asked for " + depth);
    }

    private static int questionTokens(Tokenizer tok, Sample s) {
        String q = s.task().equals("passkey") ? PasskeyTask.QUESTION : NeedleTask.question(s.key());
        return tok.encode(q.getBytes(StandardCharsets.UTF_8)).length;
    }

    private static String text(Tokenizer tok, int[] ids) {
        return new String(tok.decode(ids), StandardCharsets.UTF_8);
    }

    @Test
    void expectedAnswersAreTheQueriedValues() {
        Tokenizer bytes = Tokenizers.parse("bytes");
        Sample s = SynthTasks.sample(new NeedleTask(bytes, Haystack.synthetic(bytes), 4), 3, 1500, 0, new double[]{0.5});
        assertEquals(List.of(s.queriedNeedle().value()), RetrievalEval.expectedAnswers(s));
        assertEquals(4, s.needles().size());
    }
}
