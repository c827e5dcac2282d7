package ai.longrwkv.eval;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.core.tokenizer.Utf8StreamDecoder;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * Autoregressive generation from the logits a prefill left: sample a token, show its text, feed it, repeat. Stops at
 * the end-of-text token 0 (not fed, not shown), at the first occurrence of a stop string (the text is cut before it;
 * the tokens up to it are fed, so a chat state holds the whole turn), or after maxTokens tokens.
 *
 * <p>Text is streamed as soon as it is final: a UTF-8 character split over tokens is held until complete, and a tail
 * that could still turn into a stop string is held until it cannot.
 */
public final class Generator {
    private Generator() { }

    /** Feeds one token to the model (advancing its state) and returns the logits for the next one. */
    public interface Stepper {
        float[] feed(int token);
    }

    public enum StopReason { END_OF_TEXT, STOP_STRING, MAX_TOKENS }

    /**
     * @param text   the generated text, without the stop string
     * @param tokens every generated token that was fed (not the final 0)
     */
    public record Result(String text, int[] tokens, StopReason reason) { }

    public static Result generate(Tokenizer tokenizer, Stepper model, float[] logits, Sampler sampler, int maxTokens,
                                  List<String> stops, Consumer<String> onText) {
        if (maxTokens < 0) throw new IllegalArgumentException("--max-tokens must be >= 0, got " + maxTokens);
        List<String> stopList = new ArrayList<>();
        for (String s : stops) if (!s.isEmpty()) stopList.add(s);
        Utf8StreamDecoder decoder = new Utf8StreamDecoder();
        StringBuilder text = new StringBuilder();
        List<Integer> fed = new ArrayList<>();
        int shown = 0;
        StopReason reason = StopReason.MAX_TOKENS;
        float[] next = logits;
        for (int i = 0; i < maxTokens; i++) {
            int token = sampler.next(next);
            if (token == Tokenizer.END_OF_TEXT) {
                reason = StopReason.END_OF_TEXT;
                break;
            }
            byte[] bytes = bytesOf(tokenizer, token);
            decoder.feed(bytes, 0, bytes.length, text);
            next = model.feed(token);
            fed.add(token);
            int stopAt = firstStop(text, stopList, Math.max(0, shown - longest(stopList)));
            if (stopAt >= 0) {
                text.setLength(stopAt);
                reason = StopReason.STOP_STRING;
                break;
            }
            int safe = text.length() - heldBack(text, stopList);
            if (safe > shown && onText != null) onText.accept(text.substring(shown, safe));
            shown = Math.max(shown, safe);
        }
        if (reason != StopReason.STOP_STRING) text.append(decoder.finish());
        if (text.length() > shown && onText != null) onText.accept(text.substring(shown));
        return new Result(text.toString(), fed.stream().mapToInt(Integer::intValue).toArray(), reason);
    }

    /** A token's bytes; an id the tokenizer does not know (unassigned World ids) shows as nothing. */
    private static byte[] bytesOf(Tokenizer tokenizer, int token) {
        try {
            return tokenizer.decode(new int[]{token});
        } catch (IllegalArgumentException e) {
            return new byte[0];
        }
    }

    private static int longest(List<String> stops) {
        int n = 0;
        for (String s : stops) n = Math.max(n, s.length());
        return n;
    }

    /** Start of the earliest stop string in text at or after `from`, or -1. */
    static int firstStop(CharSequence text, List<String> stops, int from) {
        String t = text.toString();
        int best = -1;
        for (String s : stops) {
            int i = t.indexOf(s, from);
            if (i >= 0 && (best < 0 || i < best)) best = i;
        }
        return best;
    }

    /** Length of the longest tail of text that is a proper prefix of a stop string (it may still become one). */
    static int heldBack(CharSequence text, List<String> stops) {
        int hold = 0;
        for (String s : stops) {
            for (int k = Math.min(s.length() - 1, text.length()); k > hold; k--) {
                if (text.subSequence(text.length() - k, text.length()).toString().equals(s.substring(0, k))) {
                    hold = k;
                    break;
                }
            }
        }
        return hold;
    }
}
