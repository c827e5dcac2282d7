package ai.longrwkv.datasets.synth;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.datasets.io.IntList;
import ai.longrwkv.datasets.io.Utf8;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Filler text cut to an exact number of tokens. The text is split into sentences, each tokenized on its own (with the
 * whitespace before it), so sentence starts are token boundaries and a needle can be put between two sentences. The
 * sentences repeat cyclically as far as needed; a filler starts at a random sentence (its leading whitespace dropped,
 * as it follows a newline) and is cut at the exact token count, which may end it inside a sentence.
 */
public final class Haystack {
    /** The filler of the passkey test (Mohtashami and Jaggi 2023), repeated with single spaces between. */
    public static final String PASSKEY_FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";

    private final String name;
    private final Tokenizer tokenizer;
    private final int[][] sentenceTokens;
    private final String[] sentences;

    private Haystack(String name, Tokenizer tokenizer, List<String> sentenceTexts) {
        if (sentenceTexts.isEmpty()) throw new IllegalArgumentException("haystack " + name + " holds no text");
        this.name = name;
        this.tokenizer = tokenizer;
        this.sentences = sentenceTexts.toArray(new String[0]);
        this.sentenceTokens = new int[sentences.length][];
        for (int i = 0; i < sentences.length; i++) sentenceTokens[i] = tokenizer.encode(Utf8.encode(sentences[i], "haystack " + name));
    }

    /** The passkey filler: needs no data. */
    public static Haystack synthetic(Tokenizer tokenizer) {
        return fromText("synthetic", tokenizer, PASSKEY_FILLER);
    }

    /** Sentences of a text file (UTF-8; an error names the line of invalid bytes). */
    /** Largest haystack file read (256 MB). */
    public static final long MAX_FILE_BYTES = 256L << 20;

    public static Haystack fromFile(Path file, Tokenizer tokenizer) {
        ai.longrwkv.datasets.io.InputFiles.require(file, "haystack", "haystack file not found: " + file);
        // the filler is repeated as needed, so a haystack has no reason to be huge; the bound keeps a wrong file from exhausting memory
        byte[] bytes = ai.longrwkv.datasets.io.InputFiles.readAtMost(file, MAX_FILE_BYTES, "haystack");
        Utf8.Validator v = new Utf8.Validator();
        try {
            v.feed(bytes, 0, bytes.length);
            v.finish();
        } catch (Utf8.InvalidUtf8Exception e) {
            throw new IllegalArgumentException(file + " line " + e.line() + ": " + e.getMessage());
        }
        String text = new String(bytes, StandardCharsets.UTF_8);
        if (text.isBlank()) throw new IllegalArgumentException(file + ": the haystack file holds no text");
        return fromText(file.toString(), tokenizer, text);
    }

    public static Haystack fromText(String name, Tokenizer tokenizer, String text) {
        String t = text.replace("\r\n", "\n").replace('\r', '\n').strip();
        if (t.isEmpty()) throw new IllegalArgumentException("haystack " + name + " holds no text");
        List<String> out = splitSentences(t);
        // when the text repeats, its first sentence follows the last one: give it the separating space
        out.set(0, " " + out.get(0));
        return new Haystack(name, tokenizer, out);
    }

    /**
     * Sentence pieces whose concatenation is the text: a piece ends after . ! or ? (and any closing quotes or
     * brackets) that is followed by whitespace; the whitespace goes with the next piece. Pieces longer than 2000
     * characters (text without punctuation) are cut at a whitespace.
     */
    static List<String> splitSentences(String text) {
        List<String> out = new ArrayList<>();
        int start = 0;
        int n = text.length();
        for (int i = 0; i < n; i++) {
            char c = text.charAt(i);
            boolean boundary = false;
            if (Character.isWhitespace(c) && i > start) {
                int j = i - 1;
                while (j > start && "\"')]»”’".indexOf(text.charAt(j)) >= 0) j--;
                char end = text.charAt(j);
                boundary = (end == '.' || end == '!' || end == '?' || end == '。' || end == '！' || end == '？')
                        && !Character.isWhitespace(text.charAt(i - 1));
                if (!boundary && i - start > 2000) boundary = true;
            }
            if (boundary) {
                out.add(text.substring(start, i));
                start = i;
            }
        }
        if (start < n) out.add(text.substring(start));
        return out;
    }

    public String name() {
        return name;
    }

    public Tokenizer tokenizer() {
        return tokenizer;
    }

    /** Number of sentences in one round of the text. */
    public int sentenceCount() {
        return sentences.length;
    }

    /** Filler tokens and the positions in it where a sentence starts (0 included when count > 0). */
    public record Filler(int[] tokens, int[] sentenceStarts) { }

    /** Exactly `count` tokens of filler from a random sentence on. */
    public Filler take(int count, SplittableRandom rng) {
        IntList tokens = new IntList(count + 64);
        IntList starts = new IntList();
        int s = rng.nextInt(sentences.length);
        int[] first = tokenizer.encode(Utf8.encode(sentences[s].stripLeading(), "haystack " + name));
        boolean firstSentence = true;
        while (tokens.size() < count) {
            int[] sentence = firstSentence ? first : sentenceTokens[s];
            if (sentence.length > 0) {
                starts.add(tokens.size());
                tokens.addAll(sentence, 0, Math.min(sentence.length, count - tokens.size()));
            }
            firstSentence = false;
            s = (s + 1) % sentences.length;
        }
        return new Filler(tokens.toArray(), starts.toArray());
    }
}
