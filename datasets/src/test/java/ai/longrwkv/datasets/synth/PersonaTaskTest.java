package ai.longrwkv.datasets.synth;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.datasets.TestSupport;
import ai.longrwkv.datasets.build.ChatTemplate;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Issue 16: how `eval persona` and `data synth persona` build a conversation. */
class PersonaTaskTest {
    private static final Tokenizer BYTES = TestSupport.bytes();

    private static String text(int[] tokens) {
        return TestSupport.decodeBytes(tokens);
    }

    private static String span(Sample s, int from, int to) {
        return text(Arrays.copyOfRange(s.tokens(), from, to));
    }

    /** A World conversation, taken apart turn by turn: every part is where and what the task says. */
    @Test
    void aWorldConversationIsDefinitionExchangesQuestionAnswer() {
        PersonaTask task = new PersonaTask(BYTES, ChatTemplate.WORLD, FillerChats.synthetic(), PersonaTask.FACTS, "User");
        for (int index = 0; index < 20; index++) {
            Sample s = SynthTasks.sample(task, 7, 2000, index, new double[]{0.5});
            assertEquals(2000, s.length());
            String all = text(s.tokens());
            String prompt = text(s.promptTokens());
            assertEquals(all, prompt + text(s.answerTokens()));
            assertEquals(" " + s.answer(), text(s.answerTokens()), "the answer is the fact's value after a space");
            Matcher head = Pattern.compile("^System: (\\w+) is an? \\w+ \\w+ from [a-z ]+\\. \\1 remembers what User says\\.\\n\\n").matcher(prompt);
            assertTrue(head.find(), prompt);
            String name = head.group(1);
            // the turns alternate User / character, each ends with a blank line, and the prompt ends with the character's prefix
            String body = prompt.substring(head.end());
            String[] turns = body.split("\n\n", -1);
            for (int t = 0; t + 1 < turns.length; t++) {
                assertTrue(turns[t].startsWith(t % 2 == 0 ? "User: " : name + ": "), "turn " + t + ": " + turns[t]);
            }
            String reply = turns[turns.length - 1];
            assertEquals(5, s.needles().size(), "every fact is stated");
            String question = turns[turns.length - 2];
            Sample.Needle asked = s.queriedNeedle();
            assertEquals(s.key(), asked.key());
            String stated = span(s, asked.start(), asked.start() + asked.length());
            String expectedQuestion = switch (s.key()) {
                case "user-name" -> {
                    assertEquals("User: My name is " + s.answer() + ", by the way.\n\n" + name + ": Nice to meet you, " + s.answer() + ".\n\n", stated);
                    assertEquals(name + ": Of course. Your name is", reply);
                    yield "Do you remember my name?";
                }
                case "char-name" -> {
                    assertEquals("User: Is " + name + " your real name?\n\n" + name + ": No. My real name is " + s.answer() + ".\n\n", stated);
                    assertEquals(name + ": My real name is", reply);
                    yield "What is your real name?";
                }
                case "pet" -> {
                    assertTrue(stated.matches("User: Do you have any pets\\?\\n\\n" + name + ": Yes, a \\w+ named " + s.answer() + "\\.\\n\\n"), stated);
                    String kind = stated.substring(stated.indexOf("Yes, a ") + 7, stated.indexOf(" named"));
                    assertEquals(name + ": My " + kind + " is named", reply);
                    yield "What is your pet's name?";
                }
                case "promise" -> {
                    assertEquals("User: Promise you will bring " + s.answer() + " tomorrow.\n\n" + name + ": I promise I will bring " + s.answer() + ".\n\n", stated);
                    assertEquals(name + ": I promised to bring", reply);
                    yield "What did you promise to bring?";
                }
                case "number" -> {
                    assertEquals("User: My lucky number is " + s.answer() + ".\n\n" + name + ": " + s.answer() + "? I will remember that.\n\n", stated);
                    assertEquals(name + ": Your lucky number is", reply);
                    yield "What is my lucky number?";
                }
                default -> throw new AssertionError(s.key());
            };
            assertEquals("User: " + expectedQuestion, question);
            // every needle is a whole exchange: it starts at a turn boundary
            for (Sample.Needle n : s.needles()) assertTrue(span(s, 0, n.start()).endsWith("\n\n"), "needle at a turn start");
        }
    }

    @Test
    void theFactsPositionFollowsTheDepth() {
        PersonaTask task = new PersonaTask(BYTES, ChatTemplate.WORLD, FillerChats.synthetic(), List.of("number", "pet"), "User");
        for (int index = 0; index < 10; index++) {
            Sample first = SynthTasks.sample(task, 3, 1500, index, new double[]{0});
            int headEnd = text(first.tokens()).indexOf("\n\n") + 2;
            Sample.Needle n = first.queriedNeedle();
            assertTrue(n.start() == headEnd || first.needles().get(0).start() == headEnd, "depth 0: right after the definition");
            Sample last = SynthTasks.sample(task, 3, 1500, index, new double[]{1});
            Sample.Needle m = last.queriedNeedle();
            String after = span(last, m.start() + m.length(), last.answerStart());
            assertTrue(after.startsWith("User: What is") || after.startsWith("User: My lucky") || after.startsWith("User: Do you have"),
                    "depth 1: at most the other fact between it and the question: " + after);
            assertTrue(after.length() < 150, after);
            Sample middle = SynthTasks.sample(task, 3, 1500, index, new double[]{0.5});
            double d = middle.depth();
            assertTrue(d > 0.3 && d <= 0.5, "depth 0.5 goes to the exchange boundary at or before the middle: " + d);
        }
    }

    @Test
    void metharmeConversation() {
        PersonaTask task = new PersonaTask(BYTES, ChatTemplate.METHARME, FillerChats.synthetic(), List.of("number"), "You");
        Sample s = SynthTasks.sample(task, 1, 1200, 0, new double[]{0.25});
        String prompt = text(s.promptTokens());
        assertTrue(prompt.startsWith("<|system|>Enter RP mode. Pretend to be "), prompt);
        assertTrue(prompt.endsWith("<|user|>What is my lucky number?<|model|>Your lucky number is"), prompt);
        assertEquals(" " + s.answer(), text(s.answerTokens()));
        Sample.Needle n = s.queriedNeedle();
        assertEquals("<|user|>My lucky number is " + s.answer() + ".<|model|>" + s.answer() + "? I will remember that.",
                span(s, n.start() - "<|user|>".length(), n.start() + n.length() - "<|user|>".length()));
        assertTrue(!prompt.contains("\n\nYou:"), "no World turns");
    }

    @Test
    void lengthsAreExactForEveryLengthAndTheSameSampleComesBack() throws IOException {
        PersonaTask task = new PersonaTask(BYTES, ChatTemplate.WORLD, FillerChats.synthetic(), List.of("number"), "User");
        for (int length = 250; length <= 750; length += 7) {
            Sample s = SynthTasks.sample(task, 11, length, length, null);
            assertEquals(length, s.length(), "length " + length);
            String prompt = text(s.promptTokens());
            String name = prompt.substring("System: ".length(), prompt.indexOf(' ', "System: ".length()));
            assertTrue(prompt.endsWith("\n\nUser: What is my lucky number?\n\n" + name + ": Your lucky number is"), prompt);
        }
        Sample a = SynthTasks.sample(task, 11, 640, 3, null), b = SynthTasks.sample(task, 11, 640, 3, null);
        assertArrayEquals(a.tokens(), b.tokens(), "deterministic: data synth and the eval build the same conversation");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SynthTasks.sample(task, 1, 100, 0, null));
        assertTrue(e.getMessage().contains("too short for the persona task"), e.getMessage());
    }

    @Test
    void fillerFromAChatFileUsesItsExchanges(@TempDir Path dir) throws IOException {
        Path chats = TestSupport.writeLines(dir.resolve("chats.jsonl"), List.of(
                "{\"messages\": [{\"role\": \"user\", \"content\": \"Hello {{char}}!\"}, {\"role\": \"assistant\", \"content\": \"Hi {{user}}.\"}]}",
                "",
                "{\"bot_name\": \"X\", \"conversation\": [{\"message\": \"Nice hat.\", \"is_human\": true}, {\"message\": \"Thanks!\", \"is_human\": false}]}"));
        FillerChats filler = FillerChats.fromFile(chats);
        assertEquals(2, filler.size());
        PersonaTask task = new PersonaTask(BYTES, ChatTemplate.WORLD, filler, List.of("number"), "Sam");
        Sample s = SynthTasks.sample(task, 1, 900, 0, new double[]{0});
        String prompt = text(s.promptTokens());
        String name = prompt.substring("System: ".length(), prompt.indexOf(' ', "System: ".length()));
        String body = prompt.replace("Sam: My lucky number is " + s.answer() + ".\n\n" + name + ": " + s.answer() + "? I will remember that.\n\n", "");
        for (String turn : body.substring(body.indexOf("\n\n") + 2, body.lastIndexOf("\n\nSam: What is")).split("\n\n")) {
            assertTrue(List.of("Sam: Hello " + name + "!", name + ": Hi Sam.", "Sam: Nice hat.", name + ": Thanks!").contains(turn)
                    || turn.startsWith(name + ": "), "a turn from the file (or the last reply, cut): " + turn);
        }
        Path bad = TestSupport.writeLines(dir.resolve("bad.jsonl"), List.of("{\"messages\": []}", "{\"text\": \"x\"}"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> FillerChats.fromFile(bad));
        assertTrue(e.getMessage().contains("bad.jsonl line 2: expected a chat record"), e.getMessage());
    }

    @Test
    void badFactListsAreRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new PersonaTask(BYTES, ChatTemplate.WORLD, FillerChats.synthetic(), PersonaTask.parseFacts("number,pets"), "User"));
        assertTrue(e.getMessage().contains("unknown fact 'pets'"), e.getMessage());
        Assumptions.assumeTrue(PersonaTask.parseFacts("all").size() == 5);
    }
}
