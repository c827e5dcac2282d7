package ai.longrwkv.datasets.synth;

import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.datasets.build.ChatTemplate;
import ai.longrwkv.datasets.io.IntList;
import ai.longrwkv.datasets.io.Utf8;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * A long roleplay chat that tests what the character remembers (RULER-style, in the layout of a {@link ChatTemplate}):
 * <pre>
 * {system turn: the character's definition}
 * {filler exchanges, with one exchange per fact inserted at its depth}
 * {user: the question about one fact}{model prefix}{start of the reply}{answer: " value"}
 * </pre>
 * Facts (one exchange each; every sample states all the enabled facts, the queried one at the requested depth of the
 * filler, the others at random depths, so that they are distractors):
 * <ul>
 * <li>{@code user-name}: "My name is V, by the way." / "Nice to meet you, V." -> "Do you remember my name?" /
 * "Of course. Your name is" V</li>
 * <li>{@code char-name}: "Is {char} your real name?" / "No. My real name is V." -> "What is your real name?" / "My real
 * name is" V</li>
 * <li>{@code pet}: "Do you have any pets?" / "Yes, a KIND named V." -> "What is your pet's name?" / "My KIND is named" V</li>
 * <li>{@code promise}: "Promise you will bring V tomorrow." / "I promise I will bring V." -> "What did you promise to
 * bring?" / "I promised to bring" V</li>
 * <li>{@code number}: "My lucky number is V." / "V? I will remember that." -> "What is my lucky number?" / "Your lucky
 * number is" V</li>
 * </ul>
 * The character's reply to the question starts in the prompt (RULER's answer prefix): the model completes it with
 * " V", which is what is scored, and the answer loss is the loss of " V".
 * Every exchange is rendered as the session of `chat` feeds it (turn prompt, reply lead, reply, reply end) and
 * tokenized on its own, so the length is exact: the filler takes what the fixed parts leave, its last exchange's
 * reply cut to the token. The user's display name is the template's user name (default "User"); the user's real name
 * is a fact. Depth 0 puts the fact right after the system turn, 1 right before the question.
 */
public final class PersonaTask implements SynthTask {
    /** The facts a sample states, in this order of names. */
    public static final List<String> FACTS = List.of("user-name", "char-name", "pet", "promise", "number");

    static final String[] CHAR_NAMES = "Aria Bram Cora Dax Elin Finn Gwen Hale Iris Joss Kira Lorn Mave Nell Orin Pia Rook Sage Tess Vale".split(" ");
    static final String[] USER_NAMES = ("Alice Brenda Carlos Dmitri Elena Farid Greta Hiro Ines Jonas Keiko Liam Marta Nadia Oscar Priya "
            + "Quentin Rosa Sven Tomas Ursula Viktor Wanda Xavier Yusuf Zelda").split(" ");
    static final String[] REAL_NAMES = ("Amara Bastian Celeste Dorian Esmeralda Florian Giselle Hector Isolde Jasper Katya Lucien Mireille "
            + "Nikolai Ophelia Percival Rowena Silas Theodora Ulric Vesper Wilhelmina").split(" ");
    static final String[] PET_KINDS = "cat dog parrot rabbit hamster turtle ferret goldfish owl lizard".split(" ");
    static final String[] PET_NAMES = ("Biscuit Pepper Mochi Noodle Pickles Waffles Ziggy Clover Pudding Sprout Tofu Marble Acorn Button "
            + "Cinnamon Dumpling Juniper Muffin Nugget Olive").split(" ");
    static final String[] JOBS = "baker|sailor|librarian|knight|healer|merchant|bard|gardener|smith|scholar".split("\\|");
    static final String[] PLACES = "a harbour town|the northern hills|a quiet valley|the old capital|a forest village|an island".split("\\|");

    private final Tokenizer tokenizer;
    private final ChatTemplate template;
    private final FillerChats filler;
    private final List<String> facts;
    private final String userName;

    /**
     * @param facts    the facts every sample states (names from {@link #FACTS}); the asked one is drawn among them
     * @param userName the user's display name in the turns
     */
    public PersonaTask(Tokenizer tokenizer, ChatTemplate template, FillerChats filler, List<String> facts, String userName) {
        if (facts.isEmpty()) throw new IllegalArgumentException("--facts is empty: expected some of " + String.join(",", FACTS));
        for (String f : facts) {
            if (!FACTS.contains(f)) throw new IllegalArgumentException("--facts: unknown fact '" + f + "': expected some of " + String.join(",", FACTS));
            if (facts.indexOf(f) != facts.lastIndexOf(f)) throw new IllegalArgumentException("--facts: '" + f + "' is listed twice");
        }
        if (userName.isBlank()) throw new IllegalArgumentException("--user-name must not be empty");
        this.tokenizer = tokenizer;
        this.template = template;
        this.filler = filler;
        this.facts = List.copyOf(facts);
        this.userName = userName.strip();
    }

    /** Facts from a comma list ("user-name,pet"; "all"). */
    public static List<String> parseFacts(String text) {
        if (text == null || text.isBlank() || text.strip().equalsIgnoreCase("all")) return FACTS;
        List<String> out = new ArrayList<>();
        for (String f : text.split(",")) out.add(f.strip().toLowerCase(Locale.ROOT));
        return out;
    }

    @Override
    public String name() {
        return "persona";
    }

    public ChatTemplate template() {
        return template;
    }

    public FillerChats filler() {
        return filler;
    }

    public List<String> facts() {
        return facts;
    }

    /**
     * A fact: its exchange, the question that asks for it, the start of the character's reply (in the prompt, as
     * RULER's answer prefixes: the model completes it), and its value.
     */
    record Fact(String kind, String value, String userLine, String modelLine, String question, String answerPrefix) { }

    static Fact fact(String kind, SplittableRandom rng, String charName) {
        return switch (kind) {
            case "user-name" -> {
                String v = USER_NAMES[rng.nextInt(USER_NAMES.length)];
                yield new Fact(kind, v, "My name is " + v + ", by the way.", "Nice to meet you, " + v + ".", "Do you remember my name?",
                        "Of course. Your name is");
            }
            case "char-name" -> {
                String v = REAL_NAMES[rng.nextInt(REAL_NAMES.length)];
                yield new Fact(kind, v, "Is " + charName + " your real name?", "No. My real name is " + v + ".", "What is your real name?",
                        "My real name is");
            }
            case "pet" -> {
                String v = PET_NAMES[rng.nextInt(PET_NAMES.length)];
                String pet = PET_KINDS[rng.nextInt(PET_KINDS.length)];
                yield new Fact(kind, v, "Do you have any pets?", "Yes, a " + pet + " named " + v + ".", "What is your pet's name?",
                        "My " + pet + " is named");
            }
            case "promise" -> {
                String v = "the " + Words.ADJECTIVES[rng.nextInt(Words.ADJECTIVES.length)] + " " + Words.NOUNS[rng.nextInt(Words.NOUNS.length)];
                yield new Fact(kind, v, "Promise you will bring " + v + " tomorrow.", "I promise I will bring " + v + ".",
                        "What did you promise to bring?", "I promised to bring");
            }
            case "number" -> {
                String v = Integer.toString(rng.nextInt(10, 10000));
                yield new Fact(kind, v, "My lucky number is " + v + ".", v + "? I will remember that.", "What is my lucky number?",
                        "Your lucky number is");
            }
            default -> throw new IllegalArgumentException("unknown fact " + kind);
        };
    }

    /** The character's definition: the system text of the template's persona layout. */
    static String definition(String charName, SplittableRandom rng) {
        String job = JOBS[rng.nextInt(JOBS.length)];
        String place = PLACES[rng.nextInt(PLACES.length)];
        String adj = Words.ADJECTIVES[rng.nextInt(Words.ADJECTIVES.length)];
        return charName + " is " + ("aeiou".indexOf(adj.charAt(0)) >= 0 ? "an " : "a ") + adj + " " + job + " from " + place + ". "
                + charName + " remembers what {{user}} says.";
    }

    @Override
    public Sample generate(int lengthTokens, double depth, SplittableRandom rng) {
        PasskeyTask.checkDepth(depth);
        if (lengthTokens < 1) throw new IllegalArgumentException("sample length must be positive, got " + lengthTokens);
        String charName = CHAR_NAMES[rng.nextInt(CHAR_NAMES.length)];
        String asked = facts.get(rng.nextInt(facts.size()));
        List<Fact> stated = new ArrayList<>();
        double[] depths = new double[facts.size()];
        for (int i = 0; i < facts.size(); i++) {
            stated.add(fact(facts.get(i), rng, charName));
            depths[i] = facts.get(i).equals(asked) ? depth : rng.nextDouble();
        }
        String system = template.personaSystemText(ChatTemplate.fill(definition(charName, rng), charName, userName), charName, userName);
        int[] head = encode(template.conversationStart(system, userName));
        Fact q = stated.get(facts.indexOf(asked));
        int[] question = encode(template.turnPrompt(q.question(), userName, charName) + template.replyLead(charName) + q.answerPrefix());
        int[] answer = encode(" " + q.value());
        int[][] factTokens = new int[stated.size()][];
        int fixed = head.length + question.length + answer.length;
        for (int i = 0; i < stated.size(); i++) {
            Fact f = stated.get(i);
            factTokens[i] = encode(exchange(new FillerChats.Exchange(f.userLine(), f.modelLine()), charName));
            fixed += factTokens[i].length;
        }
        int budget = lengthTokens - fixed;
        if (budget < 0) {
            throw new IllegalArgumentException("length " + lengthTokens + " tokens is too short for the persona task: its fixed parts (character"
                    + " definition, " + facts.size() + " facts, question, answer) take " + fixed + " tokens with this tokenizer");
        }
        List<int[]> fill = fillerExchanges(budget, charName, rng);
        if (fill == null) {
            // too little room for even one cut exchange: the definition takes the rest, cut to the token
            head = paddedStart(system, budget, charName);
            fill = List.of();
            budget = 0;
        }

        // fact cuts: the exchange boundary at or before depth * filler (boundaries: 0, after each exchange)
        Integer[] order = new Integer[stated.size()];
        for (int i = 0; i < order.length; i++) order[i] = i;
        Arrays.sort(order, Comparator.comparingDouble(i -> depths[i]));
        int[] boundaries = new int[fill.size() + 1];
        for (int i = 0; i < fill.size(); i++) boundaries[i + 1] = boundaries[i] + fill.get(i).length;
        IntList tokens = new IntList(lengthTokens);
        tokens.addAll(head);
        int next = 0;   // filler exchanges written
        List<Sample.Needle> needles = new ArrayList<>();
        double queriedDepth = 0;
        for (int i : order) {
            int target = (int) Math.round(depths[i] * budget);
            int cut = next;
            while (cut < fill.size() && boundaries[cut + 1] <= target) cut++;
            for (; next < cut; next++) tokens.addAll(fill.get(next));
            Fact f = stated.get(i);
            if (f.kind().equals(asked)) queriedDepth = budget == 0 ? 0 : (double) boundaries[cut] / budget;
            needles.add(new Sample.Needle(f.kind(), f.value(), tokens.size(), factTokens[i].length, f.kind().equals(asked)));
            tokens.addAll(factTokens[i]);
        }
        for (; next < fill.size(); next++) tokens.addAll(fill.get(next));
        tokens.addAll(question);
        int answerStart = tokens.size();
        tokens.addAll(answer);
        if (tokens.size() != lengthTokens) throw new IllegalStateException("assembled " + tokens.size() + " tokens, wanted " + lengthTokens);
        byte[] flags = new byte[lengthTokens];
        Arrays.fill(flags, answerStart, lengthTokens, (byte) 1);
        return new Sample(name(), tokens.toArray(), flags, answerStart, answer, q.value(), asked, queriedDepth, List.copyOf(needles));
    }

    /** More of the character's definition, to pad a conversation too short for a filler exchange. */
    static final String DEFINITION_MORE = " They like long walks, old songs and quiet evenings by the fire, and they laugh easily.";

    /** The conversation start with the definition extended by exactly `extra` tokens (cut to the token). */
    private int[] paddedStart(String system, int extra, String charName) {
        String full = template.conversationStart(system, userName);
        String definition = template.normalizeMessage(system);
        int cut = full.indexOf(definition) + definition.length();
        IntList out = new IntList();
        out.addAll(encode(full.substring(0, cut)));
        StringBuilder more = new StringBuilder(DEFINITION_MORE);
        int[] moreTokens = encode(more.toString());
        while (moreTokens.length < extra) {
            more.append(DEFINITION_MORE);
            moreTokens = encode(more.toString());
        }
        out.addAll(moreTokens, 0, extra);
        out.addAll(encode(full.substring(cut)));
        return out.toArray();
    }

    /** An exchange as a session feeds it: the turn prompt, the reply with its lead, the reply end. */
    private String exchange(FillerChats.Exchange e, String charName) {
        FillerChats.Exchange r = FillerChats.render(e, template, charName, userName);
        return template.turnPrompt(r.user(), userName, charName) + template.replyLead(charName) + r.model() + template.replyEnd(userName);
    }

    /**
     * Filler exchanges of exactly `budget` tokens in all: whole exchanges while they fit, then one whose reply is cut
     * to the token (its reply end kept, so the next turn starts in format). Null if the budget is too small for
     * one exchange.
     */
    private List<int[]> fillerExchanges(int budget, String charName, SplittableRandom rng) {
        List<int[]> out = new ArrayList<>();
        if (budget == 0) return out;
        int[] end = encode(template.replyEnd(userName));
        int used = 0;
        for (int draws = 0; ; draws++) {
            if (draws > 100_000) return null;   // the file's exchanges never fit the rest: pad the definition instead
            FillerChats.Exchange e = FillerChats.render(filler.next(rng), template, charName, userName);
            int[] whole = encode(template.turnPrompt(e.user(), userName, charName) + template.replyLead(charName) + e.model() + template.replyEnd(userName));
            int[] prompt = encode(template.turnPrompt(e.user(), userName, charName));
            int left = budget - used;
            if (whole.length <= left && left - whole.length != 0 && left - whole.length < prompt.length + end.length + 1) {
                // taking this one whole would leave too little for a last cut exchange: cut this one instead
            } else if (whole.length <= left) {
                out.add(whole);
                used += whole.length;
                if (used == budget) return out;
                continue;
            }
            if (left >= prompt.length + end.length + 1) {
                // a cut reply: the prompt, the first tokens of a long reply, the reply end
                IntList cut = new IntList(left);
                cut.addAll(prompt);
                StringBuilder reply = new StringBuilder(template.replyLead(charName) + e.model());
                int[] replyTokens = encode(reply.toString());
                int want = left - prompt.length - end.length;
                while (replyTokens.length < want) {
                    reply.append(' ').append(FillerChats.render(filler.next(rng), template, charName, userName).model());
                    replyTokens = encode(reply.toString());
                }
                cut.addAll(replyTokens, 0, want);
                cut.addAll(end);
                out.add(cut.toArray());
                return out;
            }
            if (out.isEmpty()) return null;
            // too little room for a cut exchange after the last whole one: give its room back and cut there instead
            used -= out.remove(out.size() - 1).length;
        }
    }

    private int[] encode(String text) {
        return tokenizer.encode(Utf8.encode(text, "persona task text"));
    }
}
