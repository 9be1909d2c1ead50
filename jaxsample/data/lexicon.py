"""The verb lexicon: every verb of the grammar with its forms and allowed complements.

Each :class:`Verb` carries its four forms (base, third person singular, simple
past, ``-ing``) and the phrases that may follow it: direct objects (noun
phrases such as ``"the dog"``) and adverbial complements (prepositional or
adverbial phrases such as ``"to school"``). A verb with at least one direct
object is transitive. Every sentence of the grammar ends with exactly one of
its verb's complements, so a sentence never stops right after the verb.

Regular forms are derived by English spelling rules; irregular pasts are given
explicitly, and verbs whose final consonant doubles (``stop -> stopped``) are
listed in :data:`_DOUBLED_FINAL`. Only dynamic verbs appear, so the present
progressive (``"she is walking"``) is natural for every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

_DOUBLED_FINAL = frozenset(
    {
        "begin", "chop", "cut", "dig", "drop", "get", "hit", "hug", "jog", "knit", "put",
        "run", "set", "shop", "shut", "sit", "split", "stir", "stop", "swim", "win", "wrap",
    }
)  # fmt: skip
_SIBILANT_ENDINGS = ("s", "sh", "ch", "x", "z", "o")
_VOWELS = frozenset("aeiou")


@dataclass(frozen=True)
class Verb:
    """A verb: its four forms and the complements that may follow it.

    Attributes:
        base: The base form (``"walk"``), used after modals and ``to``.
        third: The present third person singular (``"walks"``).
        past: The simple past (``"walked"``, ``"ate"``).
        ing: The present participle (``"walking"``).
        objects: Direct objects the verb accepts (noun phrases), possibly empty.
        adverbials: Prepositional or adverbial complements, possibly empty.

    """

    base: str
    third: str
    past: str
    ing: str
    objects: tuple[str, ...]
    adverbials: tuple[str, ...]

    @property
    def transitive(self) -> bool:
        """Whether the verb takes a direct object (at least one entry in ``objects``)."""
        return bool(self.objects)

    @property
    def complements(self) -> tuple[str, ...]:
        """Every phrase allowed after the verb: the objects, then the adverbials."""
        return self.objects + self.adverbials

    @property
    def forms(self) -> tuple[str, str, str, str]:
        """The four forms ``(base, third, past, ing)``."""
        return (self.base, self.third, self.past, self.ing)


def _third_person(base: str) -> str:
    if base == "have":
        return "has"
    if base.endswith(_SIBILANT_ENDINGS):
        return base + "es"
    if base.endswith("y") and base[-2] not in _VOWELS:
        return base[:-1] + "ies"
    return base + "s"


def _regular_past(base: str) -> str:
    if base.endswith("e"):
        return base + "d"
    if base.endswith("y") and base[-2] not in _VOWELS:
        return base[:-1] + "ied"
    if base in _DOUBLED_FINAL:
        return base + base[-1] + "ed"
    return base + "ed"


def _present_participle(base: str) -> str:
    if base.endswith("ie"):
        return base[:-2] + "ying"
    if base.endswith("e") and not base.endswith(("ee", "ye", "oe")):
        return base[:-1] + "ing"
    if base in _DOUBLED_FINAL:
        return base + base[-1] + "ing"
    return base + "ing"


def _verb(base: str, objects: str = "", adverbials: str = "", *, past: str | None = None) -> Verb:
    """Build a verb; ``objects`` and ``adverbials`` are ``|``-separated phrase lists."""
    return Verb(
        base=base,
        third=_third_person(base),
        past=past if past is not None else _regular_past(base),
        ing=_present_participle(base),
        objects=tuple(objects.split("|")) if objects else (),
        adverbials=tuple(adverbials.split("|")) if adverbials else (),
    )


IRREGULAR_VERBS: tuple[Verb, ...] = (
    _verb("begin", "the lesson|the meeting|the race", past="began"),
    _verb("bite", "the apple|the sandwich|the carrot", past="bit"),
    _verb("blow", "the whistle|the candles|bubbles", past="blew"),
    _verb("break", "the glass|the window|the record", past="broke"),
    _verb("bring", "the cake|a present|the keys|some flowers", past="brought"),
    _verb("build", "a house|a fence|a sandcastle|the shed", past="built"),
    _verb("buy", "a new coat|the tickets|some bread|a bike", past="bought"),
    _verb("catch", "the ball|the bus|the train|a fish", past="caught"),
    _verb("choose", "a present|the winner|a new book", past="chose"),
    _verb("come", "", "home|to the party|to school|to the meeting", past="came"),
    _verb("cut", "the bread|the grass|the paper|the cake", past="cut"),
    _verb("dig", "a hole|the garden|a pond", past="dug"),
    _verb("do", "the homework|the dishes|the laundry|the shopping", past="did"),
    _verb("draw", "a picture|a map|a horse", past="drew"),
    _verb("drink", "the coffee|some water|the tea|the milk", past="drank"),
    _verb("drive", "the car|the bus|a truck", "to work|to the city|home", past="drove"),
    _verb("eat", "an apple|the cake|lunch|dinner", past="ate"),
    _verb("fall", "", "asleep|down the stairs|into the pool", past="fell"),
    _verb("feed", "the cat|the ducks|the baby|the horses", past="fed"),
    _verb("find", "the keys|a coin|the answer|the cat", past="found"),
    _verb("fly", "a kite|the plane", "to Paris|to London|home", past="flew"),
    _verb("freeze", "the meat|the soup|the bread", past="froze"),
    _verb("get", "the mail|a ticket|the newspaper|a haircut", past="got"),
    _verb("give", "a speech|a present|a lecture|a concert", past="gave"),
    _verb("go", "", "home|to school|to work|to the market|to the beach", past="went"),
    _verb("grow", "tomatoes|potatoes|roses|a beard", past="grew"),
    _verb("hang", "the picture|the washing|the coats", past="hung"),
    _verb("have", "breakfast|lunch|dinner|a bath|a party", past="had"),
    _verb("hide", "the keys|the presents|the money", "in the attic|behind the tree", past="hid"),
    _verb("hit", "the ball|the target|the nail", past="hit"),
    _verb("hold", "the baby|the door|a meeting|the rope", past="held"),
    _verb("keep", "a diary|the secret|the change", past="kept"),
    _verb("lay", "the table|the bricks|the carpet", past="laid"),
    _verb("lead", "the team|the meeting|the tour|the band", past="led"),
    _verb("leave", "the house|the party|the office", "early|at noon", past="left"),
    _verb("lend", "the car|some money|a pen", past="lent"),
    _verb("light", "the candles|the fire|the lamp", past="lit"),
    _verb("lose", "the game|the keys|the match|the race", past="lost"),
    _verb("make", "a cake|dinner|a mistake|the bed", past="made"),
    _verb("meet", "the teacher|the new boss|the doctor|some friends", past="met"),
    _verb("pay", "the bill|the rent|the driver|the fine", past="paid"),
    _verb("put", "the box on the shelf|the keys in the drawer|the milk in the fridge", past="put"),
    _verb("read", "a book|the letter|the newspaper|a story|the menu", past="read"),
    _verb("ride", "a horse|the bike", "to school|to the lake", past="rode"),
    _verb("ring", "the bell|the doorbell", past="rang"),
    _verb("run", "a marathon|the shop", "to the station|in the park|home", past="ran"),
    _verb("say", "hello|goodbye|a prayer", past="said"),
    _verb("see", "the doctor|a film|the sea|the dentist", past="saw"),
    _verb("sell", "the car|the house|some apples|the old piano", past="sold"),
    _verb("send", "a letter|the email|a parcel|a postcard", past="sent"),
    _verb("set", "the table|the alarm|a new record", past="set"),
    _verb("shake", "the bottle|the rug|the tree", past="shook"),
    _verb("show", "the photos|the way|the house", past="showed"),
    _verb("shut", "the door|the window|the gate|the shop", past="shut"),
    _verb("sing", "a song|the anthem|a lullaby", "in the choir|in the shower", past="sang"),
    _verb("sit", "", "in the garden|on the bench|by the window", past="sat"),
    _verb("sleep", "", "at home|in the tent|all night|on the sofa", past="slept"),
    _verb("slide", "", "down the hill|on the ice|down the slide", past="slid"),
    _verb("speak", "French|Spanish", "to the teacher|at the meeting|on the radio", past="spoke"),
    _verb("spend", "the money|the summer in Spain|the weekend at home", past="spent"),
    _verb("split", "the bill|the wood|the cake", past="split"),
    _verb("spread", "the butter|the jam|the news|the blanket", past="spread"),
    _verb("stand", "", "in line|by the door|on the stage", past="stood"),
    _verb("sweep", "the floor|the kitchen|the yard|the path", past="swept"),
    _verb("swim", "", "in the lake|in the sea|in the pool|across the river", past="swam"),
    _verb("take", "the bus|a photo|a nap|the train|a shower", past="took"),
    _verb("teach", "the class|French|history|the children", past="taught"),
    _verb("tell", "a story|the truth|a joke|a secret", past="told"),
    _verb("think", "", "about the plan|about the future|about the holiday", past="thought"),
    _verb("throw", "the ball|a party|the rubbish|a stone", past="threw"),
    _verb("wake", "the baby|the children|the neighbours", "up early|at dawn", past="woke"),
    _verb("wear", "a hat|a coat|the red dress|a uniform", past="wore"),
    _verb("win", "the game|the race|a prize|the lottery", past="won"),
    _verb("write", "a letter|a poem|the report|an essay", past="wrote"),
)

REGULAR_VERBS: tuple[Verb, ...] = (
    _verb("answer", "the phone|the question|the letter|the door"),
    _verb("arrive", "", "at the station|at school|home|on time"),
    _verb("ask", "the teacher|a question|the way|the doctor"),
    _verb("bake", "a cake|bread|cookies|a pie"),
    _verb("call", "the doctor|a taxi|the office|the police"),
    _verb("carry", "the bags|the box|the baby|the shopping"),
    _verb("change", "the tyre|the sheets|the plan|the bulb"),
    _verb("chase", "the cat|the ball|the bus|the thief"),
    _verb("chop", "the onions|the wood|the carrots|the herbs"),
    _verb("clean", "the kitchen|the car|the house|the windows"),
    _verb("climb", "the hill|the tree|the stairs|the mountain"),
    _verb("close", "the door|the window|the shop|the gate"),
    _verb("collect", "stamps|the children|the rubbish|the tickets"),
    _verb("cook", "dinner|the pasta|a meal|the rice"),
    _verb("cross", "the road|the river|the bridge|the street"),
    _verb("cry", "", "at the wedding|in the car|at the film"),
    _verb("dance", "", "at the party|in the kitchen|with the children"),
    _verb("deliver", "the parcel|the letters|the pizza|the newspapers"),
    _verb("dream", "", "about the sea|about the holiday|about the future"),
    _verb("drop", "the keys|the glass|the plan"),
    _verb("empty", "the bin|the box|the dishwasher|the bucket"),
    _verb("enjoy", "the concert|the film|the sun|the meal"),
    _verb("explain", "the rules|the plan|the problem|the joke"),
    _verb("finish", "the report|the homework|the book|the race"),
    _verb("fix", "the car|the bike|the roof|the sink"),
    _verb("follow", "the river|the road|the map|the rules"),
    _verb("fry", "the eggs|the fish|some onions|the potatoes"),
    _verb("help", "the teacher|the neighbours|the children|the old man"),
    _verb("hug", "the baby|the dog|the children|the teacher"),
    _verb("hurry", "", "home|to school|to the station|to work"),
    _verb("invite", "the neighbours|the teacher|the whole class|some friends"),
    _verb("jog", "", "in the park|along the river|around the lake"),
    _verb("join", "the club|the team|the choir|the army"),
    _verb("jump", "", "over the fence|into the pool|on the bed"),
    _verb("knit", "a scarf|a sweater|a hat|socks"),
    _verb("laugh", "", "at the joke|at the clown|at the film"),
    _verb("learn", "French|the song|the rules|the piano"),
    _verb("listen", "", "to the radio|to music|to the teacher|to the news"),
    _verb("look", "", "at the stars|at the map|for the keys|at the picture"),
    _verb("miss", "the bus|the train|the party|the meeting"),
    _verb("mix", "the paint|the flour|the salad|the drinks"),
    _verb("open", "the door|the window|the shop|a present|the box"),
    _verb("order", "a pizza|the food|a taxi|some books"),
    _verb("pack", "the bags|a suitcase|a lunch|the car"),
    _verb("paint", "the fence|a picture|the door|the kitchen"),
    _verb("pass", "the exam|the salt|the ball|the test"),
    _verb("peel", "the potatoes|an orange|the apples|the carrots"),
    _verb("plant", "a tree|the seeds|roses|tomatoes"),
    _verb("play", "football|the piano|chess|tennis|the guitar", "in the garden"),
    _verb("polish", "the shoes|the car|the silver|the floor"),
    _verb("pour", "the tea|the milk|the wine|the coffee"),
    _verb("practice", "the piano|the song|French|the speech"),
    _verb("prepare", "dinner|the room|a speech|the lesson"),
    _verb("push", "the door|the cart|the button|the pram"),
    _verb("relax", "", "at home|on the beach|in the garden|in the bath"),
    _verb("repair", "the roof|the fence|the radio|the bike"),
    _verb("rest", "", "at home|in the shade|on the sofa|after lunch"),
    _verb("return", "the book|the car|the keys", "home|to the office"),
    _verb("sail", "the boat", "to the island|across the lake|around the bay"),
    _verb("save", "money|the file|the cat|a seat"),
    _verb("search", "the house|the room|the garden", "for the keys"),
    _verb("share", "the cake|the pizza|the prize|the room"),
    _verb("shop", "", "for food|for clothes|at the market|online"),
    _verb("shout", "", "for help|at the referee|across the street"),
    _verb("ski", "", "in the Alps|down the slope|in the mountains"),
    _verb("smile", "", "at the baby|at the camera|at the teacher"),
    _verb("stay", "", "at home|in bed|in a hotel|with the neighbours"),
    _verb("stir", "the soup|the sauce|the paint|the tea"),
    _verb("stop", "the car|the fight|the music"),
    _verb("study", "French|history|the map", "for the exam|at the library"),
    _verb("talk", "", "to the teacher|on the phone|about the weather"),
    _verb("tidy", "the room|the desk|the garden|the kitchen"),
    _verb("tie", "the shoelaces|the rope|the boat|a knot"),
    _verb("travel", "", "to Paris|by train|around the world|to Spain"),
    _verb("visit", "the museum|the zoo|Paris|the castle"),
    _verb("wait", "", "for the bus|for the train|at the station|in the car"),
    _verb("walk", "the dog", "to school|in the park|home"),
    _verb("wash", "the dishes|the car|the clothes|the windows"),
    _verb("watch", "a film|the news|the game|the birds"),
    _verb("water", "the plants|the garden|the flowers|the lawn"),
    _verb("work", "", "at the hospital|in the garden|from home|late"),
    _verb("wrap", "the presents|the gift|the parcel"),
)

VERBS: tuple[Verb, ...] = IRREGULAR_VERBS + REGULAR_VERBS
"""Every verb of the grammar: the irregular ones, then the regular ones."""
