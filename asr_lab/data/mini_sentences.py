"""The sentences of the bundled ``datasets/mini`` set, written for the project.

Everyday English, one clause or two, using only words in pocketsphinx's en-us dictionary
(``cmudict-en-us.dict``) so forced alignment never meets an unknown word, and no digits or
abbreviations (the synthesisers would expand them differently from the text).
:func:`asr_lab.data.build.build_mini` speaks :data:`SENTENCES` as separate utterances and
joins :data:`LONG_FORM_A` / :data:`LONG_FORM_B` into two long streams. Changing a sentence
here and re-running ``python -m asr_lab.data.build datasets/mini`` rebuilds only what
changed.

Licence: written for asr_lab, released with it under the project's licence.
"""

__all__ = ["LONG_FORM_A", "LONG_FORM_B", "SENTENCES"]

SENTENCES: tuple[str, ...] = (
    "The train to the city leaves every morning at seven.",
    "Please put the milk back in the fridge when you are done.",
    "My sister bought a new bike for her birthday.",
    "It looks like it will rain later this afternoon.",
    "Could you turn the music down a little bit?",
    "We walked along the river until the sun went down.",
    "The doctor said I should drink more water.",
    "He left his keys on the kitchen table again.",
    "Our neighbors have a small dog that barks at night.",
    "I need to buy bread, eggs and cheese at the store.",
    "The meeting has been moved to next Tuesday.",
    "She reads the news on her phone every day.",
    "Let us take the bus because the car is broken.",
    "The children played in the garden all afternoon.",
    "Do you know where the nearest bank is?",
    "This soup tastes better with a little salt.",
    "The window in my room does not close properly.",
    "They are planning a trip to the mountains this summer.",
    "I forgot to send the letter to my uncle.",
    "The library closes early on Sunday.",
    "Can you help me carry these boxes upstairs?",
    "The coffee in this place is very good.",
    "We should leave now if we want to catch the last train.",
    "Please write your name at the top of the page.",
)
"""Short utterances: each spoken once, voices taken in turn (slt, rms, awb, kal16, ...)."""

LONG_FORM_A: tuple[str, ...] = (
    "Good morning and welcome to the weekly team meeting.",
    "First I would like to talk about the new office.",
    "The move will start on Monday and should take about two days.",
    "Everyone will get a new desk near the windows.",
    "Please pack your things in the boxes by Friday afternoon.",
    "The movers will take care of the heavy furniture.",
    "If you have any questions, send me a short message.",
    "Next, a few words about the project we started last month.",
    "The first part is almost finished and the results look good.",
    "We still need to test the system with more real users.",
    "Anna will write the plan for the second part.",
    "She will share it with the whole group next week.",
    "Finally, remember that the holiday party is in December.",
    "We are looking for people to help with the food and music.",
    "Thank you all for your hard work this year.",
    "That is all for today, so let us get back to work.",
)
"""A first long-form stream: a short talk at a team meeting."""

LONG_FORM_B: tuple[str, ...] = (
    "Yesterday I went to the market with my grandmother.",
    "We left the house early because she likes fresh bread.",
    "The streets were quiet and the air was cold.",
    "At the first stand we bought apples, pears and a few carrots.",
    "The man who sells fish told us a funny story about his boat.",
    "My grandmother laughed so hard that she almost dropped her bag.",
    "Then we stopped for a cup of tea at a small cafe.",
    "She told me about the town when she was a young girl.",
    "There were no cars, and everyone walked or rode a horse.",
    "Her father had a shop that sold shoes and hats.",
    "After the tea we walked home slowly through the park.",
    "The trees had turned yellow and red in the autumn sun.",
    "At home we made a big pot of vegetable soup.",
    "In the evening the whole family came for dinner.",
    "It was a simple day, but I will remember it for a long time.",
    "Next week we plan to visit the market again.",
)
"""A second long-form stream: a story about a day at the market."""
