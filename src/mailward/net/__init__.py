"""Network basics: connection limits, line reading, DNS resolvers and address classes."""
