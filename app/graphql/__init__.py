"""The GraphQL face (Strawberry): typed queries and mutations over the same domain calls as REST."""
