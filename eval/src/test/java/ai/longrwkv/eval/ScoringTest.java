package ai.longrwkv.eval;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/** Issue 6, test 2: the exact-integer and containment scorers on crafted outputs. */
class ScoringTest {
    private static double exact(String output, String key) {
        return Scoring.EXACT_INTEGER.score(output, List.of(key));
    }

    @Test
    void exactIntegerIsTheFirstIntegerOfTheOutput() {
        assertEquals(1, exact(" 12345", "12345"), "right");
        assertEquals(1, exact(" 12345. Remember it.", "12345"), "right, with extra text after");
        assertEquals(1, exact("is 12345 and 999", "12345"), "only the first integer counts");
        assertEquals(1, exact(" 012345", "12345"), "the same integer");
        assertEquals(0, exact(" 12346", "12345"), "wrong");
        assertEquals(0, exact(" 123456", "12345"), "extra digits make another integer");
        assertEquals(0, exact(" 1234", "12345"), "a prefix is not the key");
        assertEquals(0, exact(" 999 then 12345", "12345"), "a later integer does not count");
        assertEquals(0, exact(" the pass key", "12345"), "no number");
        assertEquals(0, exact("", "12345"), "nothing");
        assertEquals(1, exact("12345\n\nWhat", "12345"));
    }

    @Test
    void firstIntegerFindsAsciiDigitRuns() {
        assertEquals("42", Scoring.firstInteger("abc 42, 7"));
        assertEquals("7", Scoring.firstInteger("x-7y"));
        assertNull(Scoring.firstInteger("no digits here"));
    }

    @Test
    void containmentIsTheFractionOfExpectedStringsFoundIgnoringCase() {
        assertEquals(1, Scoring.CONTAINMENT.score(" 1234567.", List.of("1234567")), 0);
        assertEquals(1, Scoring.CONTAINMENT.score("The special magic number is 1234567 indeed", List.of("1234567")), 0, "extra text");
        assertEquals(0, Scoring.CONTAINMENT.score(" 1234568", List.of("1234567")), 0, "wrong");
        assertEquals(0, Scoring.CONTAINMENT.score(" I do not know", List.of("1234567")), 0, "no number");
        assertEquals(0.5, Scoring.CONTAINMENT.score("1111111 and 3333333", List.of("1111111", "2222222", "3333333", "4444444")), 0);
        assertEquals(1, Scoring.CONTAINMENT.score("The UUID is ABCDEF-01", List.of("abcdef-01")), 0, "case-insensitive");
    }
}
