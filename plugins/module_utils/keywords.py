# -*- coding: utf-8 -*-
# Copyright: agentops.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Keyword prefilters: which of a set of literal words occur in a text, and where, at C speed.

The redaction engine runs a rule only where one of its keywords occurs; the log scanner tries a known signature only
where one of its hint words occurs. Both ask the same three questions of a :class:`Keywords`:

* ``trie.search(text)``: is any word there (one regex, a trie of the words);
* ``present(text)``: the values (rule ids, rule indexes) of every word there;
* ``line_starts(text)`` and ``positions(text)``: which lines of a long text hold a word, and where.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re


def any_of(words):
    """One regex matching any of ``words``, as a trie (``s(?:ecret|ession|k-)``): a search costs about as much
    as two substring tests, where testing each of 60 keywords costs 60. Where it matches, it matches the longest
    word that starts there."""
    tree = {}
    for word in words:
        node = tree
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node):
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:%s)" % "|".join(branches)
        return "(?:%s)?" % body if "" in node else body
    return re.compile(build(tree) or "(?!)")


# Characters of log text, the most common first; a character not listed counts as rarer than any listed.
COMMON = " eatoinsrlhdcum0123456789:.-/=_,pfgy\"'[]wbvk{}()TSERIANOLCDPUMjxqz"
STARTS_BEFORE_TESTS = 8  # present(): places a word starts, looked at one by one, before a substring test per word


class Keywords(object):
    """Words, each with values (``{word: values}``), to look for in text."""

    def __init__(self, mapping):
        self.values = dict((word, frozenset(values)) for word, values in mapping.items() if word)
        self.trie = any_of(self.values)
        # The trie matches the longest word that starts where it matches; every word that starts there is a prefix
        # of that one: word -> the values of itself and of its prefixes.
        self.closure = dict((word, frozenset(value for other in self.values if word.startswith(other) for value in self.values[other]))
                            for word in self.values)
        self._anchored = None

    @property
    def anchored(self):
        """For long texts, a regex per anchor character (each word's rarest character, by COMMON) that starts with it,
        so that the regex engine looks for it with a fast literal search, then checks the word around it (a look-behind
        for the part before it); a trie over a block tries its alternatives at most characters. Made on first use."""
        if self._anchored is None:
            groups = {}
            for word in sorted(self.values):
                index = max(range(len(word)), key=lambda i: (COMMON.find(word[i]) < 0, COMMON.find(word[i]), -i))
                groups.setdefault(word[index], []).append((word[:index + 1], word[index + 1:]))
            self._anchored = [re.compile(re.escape(anchor) + "(?:%s)" % "|".join(
                ("(?<=%s)" % re.escape(before) if len(before) > 1 else "") + re.escape(after) for before, after in branches))
                for anchor, branches in sorted(groups.items())]
        return self._anchored

    def present(self, text):
        """The union of the values of the words that occur in ``text``: the trie searched from each place a word
        starts (the next search one character further on), each match closed over its prefixes; past a few such
        places (a text dense with words), one substring test per word instead."""
        found = set()
        search = self.trie.search
        match = search(text)
        places = 0
        while match is not None:
            places += 1
            if places > STARTS_BEFORE_TESTS:
                for word, values in self.values.items():
                    if word in text:
                        found.update(values)
                return found
            found.update(self.closure[match.group()])
            match = search(text, match.start() + 1)
        return found

    def line_starts(self, text):
        """The set of the starts of the lines of ``text`` that hold a word."""
        starts = set()
        for pattern in self.anchored:
            search = pattern.search
            match = search(text)
            while match is not None:
                start = text.rfind("\n", 0, match.start()) + 1
                starts.add(start)
                match = search(text, text.find("\n", match.end()) + 1 or len(text))
        return starts

    def positions(self, text):
        """Sorted places in ``text`` that lie inside an occurrence of a word, at least one inside each line that holds
        one (not one per occurrence: occurrences that overlap may share one)."""
        found = []
        for pattern in self.anchored:
            found.extend(match.start() for match in pattern.finditer(text))
        found.sort()
        return found
