package ai.longrwkv.datasets;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** Token counts on the command line: "4096", "4k" (= 4096), "128K" (= 131072). */
public final class Lengths {
    private Lengths() { }

    public static int parse(String option, String text) {
        String s = text.strip().toLowerCase(Locale.ROOT);
        long multiplier = 1;
        if (s.endsWith("k")) {
            multiplier = 1024;
            s = s.substring(0, s.length() - 1);
        } else if (s.endsWith("m")) {
            multiplier = 1024 * 1024;
            s = s.substring(0, s.length() - 1);
        }
        long value;
        try {
            value = Long.parseLong(s) * multiplier;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(option + ": '" + text + "' is not a token count (examples: 4096, 4k, 128k)");
        }
        if (value < 1 || value > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(option + ": " + text + " is out of range (1 to " + (Integer.MAX_VALUE - 8) + " tokens)");
        }
        return (int) value;
    }

    /** "1k,4k,16k" to [1024, 4096, 16384]. */
    public static List<Integer> parseList(String option, String text) {
        List<Integer> out = new ArrayList<>();
        for (String part : text.split(",")) {
            if (part.isBlank()) throw new IllegalArgumentException(option + ": empty entry in '" + text + "'");
            out.add(parse(option, part));
        }
        return out;
    }

    /** 4096 -> "4k", 1000 -> "1000". */
    public static String format(int tokens) {
        return tokens % 1024 == 0 ? tokens / 1024 + "k" : Integer.toString(tokens);
    }
}
