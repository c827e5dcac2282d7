package ai.longrwkv.datasets.synth;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.datasets.io.IntList;
import ai.longrwkv.datasets.io.Utf8;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Builds intro + filler with needles + question + answer to an exact token count. Each part is tokenized on its own
 * and the token arrays are concatenated, so the count is exact and the spans are known; the filler takes whatever
 * the fixed parts leave.
 */
final class PromptAssembler {
    private PromptAssembler() { }

    /** A needle to place: its text (with the newlines around it), key, value, requested depth, whether queried. */
    record NeedleSpec(String text, String key, String value, double depth, boolean queried) { }

    static Sample assemble(String task, Tokenizer tokenizer, Haystack haystack, int lengthTokens, String intro,
                           List<NeedleSpec> needles, String question, String answer, String key, SplittableRandom rng) {
        if (lengthTokens < 1) throw new IllegalArgumentException("sample length must be positive, got " + lengthTokens);
        int[] introTokens = encode(tokenizer, intro);
        int[] questionTokens = encode(tokenizer, question);
        int[] answerTokens = encode(tokenizer, " " + answer);
        List<NeedleSpec> ordered = new ArrayList<>(needles);
        ordered.sort(Comparator.comparingDouble(NeedleSpec::depth));
        int[][] needleTokens = new int[ordered.size()][];
        int fixed = introTokens.length + questionTokens.length + answerTokens.length;
        for (int i = 0; i < ordered.size(); i++) {
            needleTokens[i] = encode(tokenizer, ordered.get(i).text());
            fixed += needleTokens[i].length;
        }
        int fillerTokens = lengthTokens - fixed;
        if (fillerTokens < 0) {
            throw new IllegalArgumentException("length " + lengthTokens + " tokens is too short for the " + task + " task: its fixed parts take "
                    + fixed + " tokens with this tokenizer");
        }
        Haystack.Filler filler = haystack.take(fillerTokens, rng);

        // needle cuts: the sentence start at or before depth * filler, never before the previous needle's cut
        int[] cuts = new int[ordered.size()];
        int previous = 0;
        for (int i = 0; i < ordered.size(); i++) {
            int target = (int) Math.round(ordered.get(i).depth() * fillerTokens);
            int cut = sentenceStartAtOrBefore(filler, target, fillerTokens);
            cuts[i] = Math.max(previous, cut);
            previous = cuts[i];
        }

        IntList tokens = new IntList(lengthTokens);
        tokens.addAll(introTokens);
        int fillerPos = 0;
        List<Sample.Needle> placed = new ArrayList<>();
        double queriedDepth = 0;
        for (int i = 0; i < ordered.size(); i++) {
            tokens.addAll(filler.tokens(), fillerPos, cuts[i]);
            fillerPos = cuts[i];
            NeedleSpec spec = ordered.get(i);
            placed.add(new Sample.Needle(spec.key(), spec.value(), tokens.size(), needleTokens[i].length, spec.queried()));
            if (spec.queried()) queriedDepth = fillerTokens == 0 ? 0 : (double) cuts[i] / fillerTokens;
            tokens.addAll(needleTokens[i]);
        }
        tokens.addAll(filler.tokens(), fillerPos, fillerTokens);
        tokens.addAll(questionTokens);
        int answerStart = tokens.size();
        tokens.addAll(answerTokens);
        if (tokens.size() != lengthTokens) throw new IllegalStateException("assembled " + tokens.size() + " tokens, wanted " + lengthTokens);
        byte[] flags = new byte[lengthTokens];
        Arrays.fill(flags, answerStart, lengthTokens, (byte) 1);
        return new Sample(task, tokens.toArray(), flags, answerStart, answerTokens, answer, key, queriedDepth, List.copyOf(placed));
    }

    /** The largest sentence start <= target (the filler end counts as one); 0 if none. */
    private static int sentenceStartAtOrBefore(Haystack.Filler filler, int target, int fillerTokens) {
        if (target >= fillerTokens) return fillerTokens;
        int[] starts = filler.sentenceStarts();
        int i = Arrays.binarySearch(starts, target);
        if (i >= 0) return starts[i];
        int insertion = -i - 1;
        return insertion == 0 ? 0 : starts[insertion - 1];
    }

    private static int[] encode(Tokenizer tokenizer, String text) {
        return tokenizer.encode(Utf8.encode(text, "task text"));
    }
}
