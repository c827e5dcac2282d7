package ai.longrwkv.eval;

import java.math.BigInteger;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** How the retrieval evals score a model's output. */
public enum Scoring {
    /**
     * Passkey (Mohtashami and Jaggi 2023): 1 iff the first integer in the output equals the key, else 0. "12345."
     * and "is 12345" count; "123456" (extra digits) and "1234" do not.
     */
    EXACT_INTEGER {
        @Override
        public double score(String output, List<String> expected) {
            String first = firstInteger(output);
            return first != null && expected.size() == 1 && new BigInteger(first).equals(new BigInteger(expected.get(0).strip())) ? 1 : 0;
        }
    },
    /** RULER: the fraction of the expected strings that occur in the output, ignoring case. */
    CONTAINMENT {
        @Override
        public double score(String output, List<String> expected) {
            if (expected.isEmpty()) throw new IllegalArgumentException("nothing to look for");
            String out = output.toLowerCase(Locale.ROOT);
            int found = 0;
            for (String e : expected) if (out.contains(e.toLowerCase(Locale.ROOT))) found++;
            return found / (double) expected.size();
        }
    },
    /**
     * Exact match of a fact (eval persona): 1 iff every expected string occurs in the output as whole words (not
     * inside a longer word or number: "12" is not found in "123", "Pia" not in "Pialy"), ignoring case.
     */
    WORD_MATCH {
        @Override
        public double score(String output, List<String> expected) {
            if (expected.isEmpty()) throw new IllegalArgumentException("nothing to look for");
            for (String e : expected) {
                Pattern word = Pattern.compile("(?<![\\p{L}\\p{N}])" + Pattern.quote(e.strip()) + "(?![\\p{L}\\p{N}])",
                        Pattern.CASE_INSENSITIVE | Pattern.UNICODE_CASE);
                if (!word.matcher(output).find()) return 0;
            }
            return 1;
        }
    };

    private static final Pattern INTEGER = Pattern.compile("[0-9]+");

    /** Score in [0, 1] of an output against the expected answer strings. */
    public abstract double score(String output, List<String> expected);

    /** The first run of ASCII digits in the text, or null if there is none. */
    public static String firstInteger(String text) {
        Matcher m = INTEGER.matcher(text);
        return m.find() ? m.group() : null;
    }
}
